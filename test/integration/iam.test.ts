import { DynamoDBClient, GetItemCommand, PutItemCommand } from '@aws-sdk/client-dynamodb';
import { GetPublicKeyCommand, KMSClient, SignCommand } from '@aws-sdk/client-kms';
import { GetQueueUrlCommand, ReceiveMessageCommand, SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { describe, expect, inject, it } from 'vitest';
import { authorizersOf } from '../../local/api-gateway.ts';
import { EXPECT_REFUSAL_HEADER, type IamReport } from '../../local/aws/iam-check.ts';
import { credentialsEnv, functionPrincipalName, hostAgentCredentials } from '../../local/aws/iam-principals.ts';
import { readTemplate, resourcesOfType } from '../../local/template.ts';

/*
 * IAM is enforced by the proxy in front of the local AWS (local/aws/iam-check.ts), not by the
 * emulator: these calls use real keys of the run (a function's, a host agent's) for things their
 * policies in the synthesized template do not allow, and must get AWS's AccessDenied. Each says
 * it expects the refusal, so the run's teardown does not count it as a finding.
 */

const region = inject('region');
const endpoint = inject('awsEndpoint');
const template = readTemplate(inject('templateFile'));
const resources = inject('resources');

type Credentials = { AWS_ACCESS_KEY_ID: string; AWS_SECRET_ACCESS_KEY: string };

/** An SDK client signing with `credentials`, marking its calls as ones the test expects to be refused. */
function clientAs<T extends { middlewareStack: { add: (...args: any[]) => void } }>(
  Client: new (config: object) => T,
  credentials: Credentials,
  expectRefusal: boolean,
): T {
  const client = new Client({
    endpoint,
    region,
    credentials: { accessKeyId: credentials.AWS_ACCESS_KEY_ID, secretAccessKey: credentials.AWS_SECRET_ACCESS_KEY },
    maxAttempts: 1,
  });
  if (expectRefusal)
    client.middlewareStack.add(
      (next: (args: any) => Promise<unknown>) => (args: any) => {
        args.request.headers[EXPECT_REFUSAL_HEADER] = '1';
        return next(args);
      },
      { step: 'build', name: 'expectRefusal' },
    );
  return client;
}

const tableName = resourcesOfType(template, 'AWS::DynamoDB::GlobalTable').map(([id]) => resources[id]!)[0]!;
const queueUrl = (prefix: string) => Object.entries(resources).find(([id]) => id.startsWith(prefix))![1];
const authorizer = credentialsEnv(functionPrincipalName(region, authorizersOf(template)[0]!.functionLogicalId));
const apiTokenKeyAlias = resourcesOfType(template, 'AWS::KMS::Alias')
  .map(([, alias]) => alias.Properties?.AliasName as string)
  .find((name) => name.endsWith('api-tokens'))!;

describe.skipIf(!inject('awsProxied'))("IAM on the local AWS: a caller's key does only what its policy allows", () => {
  it("lets the authorizer's key read the table and get the token key's public half, and refuses it a write or a signature", async () => {
    const key = { pk: { S: 'IAMTEST#probe' }, sk: { S: 'IAMTEST#probe' } };
    const allowed = clientAs(DynamoDBClient, authorizer, false);
    await expect(allowed.send(new GetItemCommand({ TableName: tableName, Key: key }))).resolves.toBeDefined();
    await expect(clientAs(KMSClient, authorizer, false).send(new GetPublicKeyCommand({ KeyId: apiTokenKeyAlias }))).resolves.toMatchObject({
      KeySpec: 'ECC_NIST_P256',
    });

    const refused = clientAs(DynamoDBClient, authorizer, true);
    const write = refused.send(new PutItemCommand({ TableName: tableName, Item: key }));
    await expect(write).rejects.toMatchObject({ name: 'AccessDeniedException', $metadata: { httpStatusCode: 400 } });
    await expect(write).rejects.toThrow(/is not authorized to perform: dynamodb:PutItem on resource: arn:aws:dynamodb:/);
    // Nothing reached the table.
    expect((await allowed.send(new GetItemCommand({ TableName: tableName, Key: key, ConsistentRead: true }))).Item).toBeUndefined();

    const sign = clientAs(KMSClient, authorizer, true).send(
      new SignCommand({ KeyId: apiTokenKeyAlias, Message: Buffer.from('forged'), SigningAlgorithm: 'ECDSA_SHA_256', MessageType: 'RAW' }),
    );
    await expect(sign).rejects.toMatchObject({ name: 'AccessDeniedException' });
    await expect(sign).rejects.toThrow(/kms:Sign on resource: arn:aws:kms:/);
  });

  it("refuses a function's key a queue it is not granted", async () => {
    const send = clientAs(SQSClient, authorizer, true).send(new SendMessageCommand({ QueueUrl: queueUrl('GraphQueue'), MessageBody: '{}' }));
    await expect(send).rejects.toMatchObject({ $metadata: { httpStatusCode: 403 } });
    await expect(send).rejects.toThrow(/sqs:SendMessage on resource: arn:aws:sqs:/);
  });

  it("lets a host agent's key read its own host queue's name and no other host's", async () => {
    const hostA = await hostAgentCredentials(endpoint, region, 'iam-host-a');
    // The host queue names come from the stack (QueueFamily): `<stack>-host-<id>`; asked by name, as the agent does.
    const prefix = resourcesOfType(template, 'AWS::IAM::ManagedPolicy')
      .map(([, policy]) => JSON.stringify(policy.Properties?.PolicyDocument))
      .join('')
      .match(/:([^":]+-host-)\$\{aws:PrincipalTag/)?.[1];
    expect(prefix, 'HostAgentPolicy names the host queues by prefix').toBeDefined();
    const own = clientAs(SQSClient, hostA, false).send(new GetQueueUrlCommand({ QueueName: `${prefix}iam-host-a` }));
    // Allowed, so the emulator answers: the queue was never made.
    await expect(own).rejects.toMatchObject({ name: expect.stringMatching(/QueueDoesNotExist|NonExistentQueue/) });
    const other = clientAs(SQSClient, hostA, true);
    await expect(other.send(new GetQueueUrlCommand({ QueueName: `${prefix}iam-host-b` }))).rejects.toMatchObject({ $metadata: { httpStatusCode: 403 } });
    const otherUrl = `${endpoint}/queue/${region}/000000000000/${prefix}iam-host-b`;
    await expect(other.send(new ReceiveMessageCommand({ QueueUrl: otherUrl, WaitTimeSeconds: 0 }))).rejects.toThrow(/sqs:ReceiveMessage/);
  });

  it('reports the refusals asked for here as expected, and every refusal of the run so far was one', async () => {
    const report = (await (await fetch(`${inject('controlUrl')}/iam-report`)).json()) as IamReport;
    expect(report.mode).toBe('enforce');
    const expected = report.refused.filter((refusal) => refusal.expected).map((refusal) => refusal.action);
    expect(expected).toEqual(expect.arrayContaining(['dynamodb:PutItem', 'kms:Sign', 'sqs:SendMessage', 'sqs:GetQueueUrl', 'sqs:ReceiveMessage']));
    expect(report.refused.filter((refusal) => !refusal.expected)).toEqual([]);
    expect(report.errors).toEqual([]);
  });
});
