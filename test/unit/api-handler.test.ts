import { DynamoDBServiceException } from '@aws-sdk/client-dynamodb';
import type { APIGatewayProxyEvent, APIGatewayProxyResult, Context } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import { operations } from '#events/operations.ts';
import { apiHandler } from '#functions/triggers/api-handler.ts';

const context = {
  functionName: 'test',
  awsRequestId: 'request-1',
  invokedFunctionArn: 'arn:aws:lambda:us-east-1:000000000000:function:test',
  memoryLimitInMB: '128',
} as Context;

/** A request as API Gateway hands it over, from tenant `acme` with read and write scopes. */
function requestEvent(overrides: Partial<APIGatewayProxyEvent> = {}): APIGatewayProxyEvent {
  return {
    body: null,
    headers: {},
    isBase64Encoded: false,
    pathParameters: null,
    queryStringParameters: null,
    requestContext: { authorizer: { sub: 'tenant:acme', scope: 'tenant:read tenant:write' } },
    ...overrides,
  } as unknown as APIGatewayProxyEvent;
}

async function call(handler: ReturnType<typeof apiHandler>, event: APIGatewayProxyEvent) {
  const result = (await handler(event, context)) as APIGatewayProxyResult;
  return { status: result.statusCode, body: JSON.parse(result.body || 'null') as { message?: string } };
}

describe('API handler answers', () => {
  it("turns DynamoDB's ValidationException into a 400 with a message, not a 500", async () => {
    const refusing = (message: string) =>
      apiHandler(operations.listNetworks, async () => {
        throw new DynamoDBServiceException({ name: 'ValidationException', $fault: 'client', $metadata: { httpStatusCode: 400 }, message });
      });
    const tooBig = await call(refusing('Item size has exceeded the maximum allowed size'), requestEvent());
    expect(tooBig).toEqual({ status: 400, body: { message: expect.stringMatching(/^request: the resource would be larger than the table allows/) } });
    const other = await call(
      refusing('One or more parameter values were invalid: An AttributeValue may not contain an empty string. Key: gsi1pk'),
      requestEvent(),
    );
    expect(other.status).toBe(400);
    // DynamoDB's words name the table's own attributes: they stay in the log.
    expect(other.body.message).toMatch(/^request: a value was refused as invalid/);
    expect(other.body.message).not.toContain('gsi1pk');
  });

  it('still answers anything else unexpected with a bare 500', async () => {
    const failing = apiHandler(operations.listNetworks, async () => {
      throw new TypeError('x is undefined');
    });
    expect(await call(failing, requestEvent())).toEqual({ status: 500, body: { message: 'internal error' } });
  });

  it('answers a body that is not declared as JSON with a 415 saying what to send, and reads JSON in any of its spellings', async () => {
    let created = 0;
    const createNetwork = apiHandler(operations.createNetwork, async () => {
      created += 1;
      return { statusCode: 201, body: {} };
    });
    const body = JSON.stringify({ name: 'x', cidr: '10.0.0.0/24' });
    for (const type of ['application/x-www-form-urlencoded', 'text/plain;charset=UTF-8', 'multipart/form-data; boundary=x', '']) {
      const response = await call(createNetwork, requestEvent({ body, headers: { 'Content-Type': type } }));
      expect(response.status).toBe(415);
      expect(response.body.message).toMatch(/^content-type: .* is not accepted; send the body as application\/json$/);
    }
    expect(created).toBe(0);
    for (const headers of [
      { 'content-type': 'application/json' },
      { 'Content-Type': 'Application/JSON; charset=utf-8' },
      { 'content-type': 'application/merge-patch+json' },
      {},
    ]) {
      expect((await call(createNetwork, requestEvent({ body, headers }))).status).toBe(201);
    }
    // Routes without a body ignore whatever was sent.
    const list = apiHandler(operations.listNetworks, async () => ({ statusCode: 200, body: { networks: [] } }));
    expect((await call(list, requestEvent({ body: 'a=1', headers: { 'content-type': 'application/x-www-form-urlencoded' } }))).status).toBe(200);
  });
});
