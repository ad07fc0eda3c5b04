import { createHash, randomBytes } from 'node:crypto';
import { CompleteMultipartUploadCommand, S3Client } from '@aws-sdk/client-s3';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { describe, expect, inject, it } from 'vitest';
import type { ApiResponse } from '#events/api-client.ts';
import { deploymentFromEnvironment, metadataTableName } from '#events/naming.ts';
import { eventually } from '../helpers/agents.ts';
import { expectOk, request, uniqueId } from '../helpers/api.ts';
import { uploadParts } from '../helpers/images.ts';
import { localAwsConfig } from '../helpers/local-aws.ts';
import { tenantToken } from '../helpers/tokens.ts';

/** A request exactly as given: the api helper would set a JSON content type and check the answer against the description. */
async function raw(method: string, path: string, options: { token?: Promise<string>; contentType?: string; body?: string } = {}) {
  const headers: Record<string, string> = {};
  if (options.token) headers.authorization = `Bearer ${await options.token}`;
  if (options.contentType) headers['content-type'] = options.contentType;
  const response = await fetch(`${inject('apiUrl')}${path}`, { method, headers, body: options.body });
  const text = await response.text();
  return { status: response.status, contentType: response.headers.get('content-type'), body: JSON.parse(text) as { message: string } };
}

describe('answers users hit', () => {
  const tenantA = tenantToken(uniqueId('answers-a'));
  const tenantB = tenantToken(uniqueId('answers-b'));

  it("refuses a forged, altered or another tenant's or list's nextToken with a 400 naming it, and pages with its own", async () => {
    for (const cidr of ['10.71.0.0/24', '10.71.1.0/24', '10.71.2.0/24'])
      await expectOk(request('createNetwork', { body: { name: 'paged', cidr } }, { token: tenantA }), 201);
    await expectOk(request('createNetwork', { body: { name: 'other', cidr: '10.71.0.0/24' } }, { token: tenantB }), 201);
    const first = await expectOk(request('listNetworks', { query: { limit: 1 } }, { token: tenantA }));
    const token = first.nextToken!;
    expect(token).toBeTypeOf('string');

    const [version, payload, mac] = token.split('.') as [string, string, string];
    const startKey = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as Record<string, string>;
    const unsigned = (key: Record<string, unknown>) => Buffer.from(JSON.stringify(key)).toString('base64url');
    const refused = [
      // A start key made up by the client, as cursors were before they were signed: well formed, and malformed.
      unsigned(startKey),
      unsigned({ pk: 'NET#x' }),
      // The real cursor with its key altered, or its signature.
      `${version}.${unsigned({ ...startKey, gsi1sk: 'net-000000000000' })}.${mac}`,
      `${version}.${payload}.${Buffer.alloc(32).toString('base64url')}`,
    ];
    for (const forged of refused) {
      const response = await request('listNetworks', { query: { limit: 1, nextToken: forged } }, { token: tenantA });
      expect(response).toEqual({ status: 400, body: { message: expect.stringMatching(/^nextToken: is not a token this API returned for this list/) } });
    }
    // Another tenant's cursor, or one of another list, is as good as forged.
    expect((await request('listNetworks', { query: { limit: 1, nextToken: token } }, { token: tenantB })).status).toBe(400);
    expect((await request('listDisks', { query: { limit: 1, nextToken: token } }, { token: tenantA })).status).toBe(400);
    expect((await request('listImages', { query: { limit: 1, nextToken: token } }, { token: tenantA })).status).toBe(400);

    // The real one still pages, through every network once.
    const seen = [first.networks[0]!.networkId];
    let next: string | undefined = token;
    while (next) {
      const page: ApiResponse<'listNetworks'> = await expectOk(request('listNetworks', { query: { limit: 1, nextToken: next } }, { token: tenantA }));
      seen.push(...page.networks.map((network) => network.networkId));
      next = page.nextToken;
    }
    expect(new Set(seen).size).toBe(3);
    expect(seen).toHaveLength(3);
  });

  it('answers a body sent as a form or as text with a 415 saying to send JSON, and changes nothing', async () => {
    const tenant = tenantToken(uniqueId('answers-415'));
    const body = JSON.stringify({ name: 'typed', cidr: '10.72.0.0/24' });
    for (const contentType of ['application/x-www-form-urlencoded', 'text/plain;charset=UTF-8']) {
      const response = await raw('POST', '/networks', { token: tenant, contentType, body });
      expect(response.status).toBe(415);
      expect(response.body.message).toBe(`content-type: ${contentType.split(';')[0]!.toLowerCase()} is not accepted; send the body as application/json`);
    }
    expect((await expectOk(request('listNetworks', {}, { token: tenant }))).networks).toEqual([]);
    expect((await raw('POST', '/networks', { token: tenant, contentType: 'application/json; charset=utf-8', body })).status).toBe(201);
  });

  it('answers an unknown route or method with a 404 and a JSON message, with or without a token', async () => {
    for (const [method, path, token] of [
      ['GET', '/nothing-here', tenantA],
      ['GET', '/nothing-here', undefined],
      ['DELETE', '/networks', tenantA],
      ['PATCH', '/vms/vm-000000000000', tenantA],
    ] as const) {
      const response = await raw(method, path, { token });
      expect(response.status).toBe(404);
      expect(response.contentType).toMatch(/^application\/json/);
      expect(response.body).toEqual({ message: 'no route for this method and path; GET /openapi.json lists them' });
    }
  });

  it('sends the verification of an image left verifying without its job again when complete is called again', async () => {
    const content = randomBytes(4096);
    const sha256 = createHash('sha256').update(content).digest('hex');
    const { image, upload } = await expectOk(
      request('createImage', { body: { name: 'stranded', sizeBytes: content.length, sha256 } }, { token: tenantA }),
      201,
    );
    const parts = await uploadParts(upload, content);

    // What a complete whose process died right after the state change leaves: the upload closed,
    // the image verifying, and no verification job sent.
    const config = localAwsConfig();
    const dynamodb = DynamoDBDocumentClient.from(new DynamoDBClient(config));
    const key = { pk: `IMAGE#${image.imageId}`, sk: 'IMAGE' };
    const { Item: stored } = await dynamodb.send(new GetCommand({ TableName: metadataTableName(deploymentFromEnvironment()), Key: key }));
    await new S3Client({ ...config, forcePathStyle: true }).send(
      new CompleteMultipartUploadCommand({
        Bucket: stored!.bucket,
        Key: stored!.key,
        UploadId: stored!.uploadId,
        MultipartUpload: { Parts: parts.map(({ partNumber, etag }) => ({ PartNumber: partNumber, ETag: etag })) },
      }),
    );
    await dynamodb.send(
      new UpdateCommand({
        TableName: metadataTableName(deploymentFromEnvironment()),
        Key: key,
        UpdateExpression: 'SET #state = :verifying',
        ExpressionAttributeNames: { '#state': 'state' },
        ExpressionAttributeValues: { ':verifying': 'verifying' },
      }),
    );

    // The client retries the complete it saw fail.
    const retried = await expectOk(request('completeImageUpload', { params: { imageId: image.imageId }, body: { parts } }, { token: tenantA }), 202);
    expect(retried.state).toBe('verifying');
    await eventually(
      async () => expect((await expectOk(request('getImage', { params: { imageId: image.imageId } }, { token: tenantA }))).state).toBe('available'),
      60_000,
      200,
    );
    // Verified: completing again is the conflict it always was.
    expect((await request('completeImageUpload', { params: { imageId: image.imageId }, body: { parts } }, { token: tenantA })).status).toBe(409);
  });
});
