import { describe, expect, it } from 'vitest';
import { credentialOf, permissionsFor, queueOfUrl, s3OperationOf, streamArnOfIterator, type WireCall } from '../../local/aws/iam-requests.ts';

const url = (path: string) => new URL(path, 'http://127.0.0.1:4566');
const json = (service: string, operation: string, body: Record<string, unknown>, region = 'us-east-1'): WireCall => ({
  service,
  operation,
  method: 'POST',
  url: url('/'),
  headers: {},
  region,
  accountId: '000000000000',
  body,
});
const rest = (method: string, path: string, headers: Record<string, string> = {}): WireCall => ({
  service: 's3',
  method,
  url: url(path),
  headers,
  region: 'us-east-1',
  accountId: '000000000000',
});
const table = (name: string, region = 'us-east-1') => `arn:aws:dynamodb:${region}:000000000000:table/${name}`;

describe('the IAM actions and resources of an AWS call', () => {
  it('reads the caller from a SigV4 header or a presigned URL', () => {
    expect(
      credentialOf({ authorization: 'AWS4-HMAC-SHA256 Credential=AKIAABC/20261203/eu-west-1/sqs/aws4_request, SignedHeaders=host, Signature=x' }, url('/')),
    ).toEqual({
      accessKeyId: 'AKIAABC',
      region: 'eu-west-1',
      service: 'sqs',
    });
    expect(credentialOf({}, url('/b/k?X-Amz-Credential=AKIAXYZ%2F20261203%2Fus-east-1%2Fs3%2Faws4_request&uploadId=u&partNumber=1'))).toEqual({
      accessKeyId: 'AKIAXYZ',
      region: 'us-east-1',
      service: 's3',
    });
    expect(credentialOf({}, url('/'))).toBeUndefined();
  });

  it('maps DynamoDB calls to the table or index they name, needing its key through DynamoDB for data', () => {
    expect(permissionsFor(json('dynamodb', 'GetItem', { TableName: 'T' }))).toEqual([
      { action: 'dynamodb:GetItem', resource: table('T'), kmsVia: { service: 'dynamodb', actions: ['kms:Decrypt'] } },
    ]);
    expect(permissionsFor(json('dynamodb', 'Query', { TableName: 'T', IndexName: 'gsi1' }, 'eu-west-1'))[0]!.resource).toBe(
      `${table('T', 'eu-west-1')}/index/gsi1`,
    );
    expect(permissionsFor(json('dynamodb', 'DescribeTable', { TableName: 'T' }))).toEqual([{ action: 'dynamodb:DescribeTable', resource: table('T') }]);
  });

  it('checks each item of a transaction as its own action, and each table of a batch', () => {
    const transaction = json('dynamodb', 'TransactWriteItems', {
      TransactItems: [{ Put: { TableName: 'A' } }, { Update: { TableName: 'A' } }, { ConditionCheck: { TableName: 'B' } }, { Delete: { TableName: 'A' } }],
    });
    expect(permissionsFor(transaction).map(({ action, resource }) => [action, resource])).toEqual([
      ['dynamodb:PutItem', table('A')],
      ['dynamodb:UpdateItem', table('A')],
      ['dynamodb:ConditionCheckItem', table('B')],
      ['dynamodb:DeleteItem', table('A')],
    ]);
    expect(permissionsFor(json('dynamodb', 'TransactGetItems', { TransactItems: [{ Get: { TableName: 'A' } }] }))[0]!.action).toBe('dynamodb:GetItem');
    expect(permissionsFor(json('dynamodb', 'BatchWriteItem', { RequestItems: { A: [], B: [] } })).map(({ action, resource }) => [action, resource])).toEqual([
      ['dynamodb:BatchWriteItem', table('A')],
      ['dynamodb:BatchWriteItem', table('B')],
    ]);
  });

  it('names the stream a shard iterator reads, from the iterator or from what was seen before', () => {
    const stream = `${table('T')}/stream/2026-12-03T00:00:00.000`;
    expect(streamArnOfIterator(`${stream}|1|AAAA`)).toBe(stream);
    expect(permissionsFor(json('dynamodbstreams', 'GetRecords', { ShardIterator: `${stream}|1|AAAA` }))).toEqual([
      { action: 'dynamodb:GetRecords', resource: stream },
    ]);
    expect(permissionsFor(json('dynamodbstreams', 'GetRecords', { ShardIterator: 'opaque' }), () => stream)[0]!.resource).toBe(stream);
    // DynamoDB Local's iterators name its own region, not the one the stream was asked in.
    const local = `arn:aws:dynamodb:ddblocal:000000000000:table/T/stream/x|1|AAAA`;
    expect(permissionsFor(json('dynamodbstreams', 'GetRecords', { ShardIterator: local }, 'eu-west-1'))[0]!.resource).toBe(
      `${table('T', 'eu-west-1')}/stream/x`,
    );
    expect(permissionsFor(json('dynamodbstreams', 'DescribeStream', { StreamArn: stream }))).toEqual([{ action: 'dynamodb:DescribeStream', resource: stream }]);
  });

  it("maps SQS calls to the queue's ARN in the queue's own region, batches to their single actions", () => {
    expect(queueOfUrl('http://127.0.0.1:4566/queue/eu-west-1/000000000000/Graph', 'us-east-1')).toEqual({
      region: 'eu-west-1',
      accountId: '000000000000',
      name: 'Graph',
    });
    expect(queueOfUrl('https://sqs.us-west-2.amazonaws.com/123456789012/Q', 'us-east-1')).toEqual({
      region: 'us-west-2',
      accountId: '123456789012',
      name: 'Q',
    });
    const batch = permissionsFor(json('sqs', 'SendMessageBatch', { QueueUrl: 'http://127.0.0.1:4566/queue/eu-west-1/000000000000/Graph', Entries: [] }));
    expect(batch).toEqual([
      {
        action: 'sqs:SendMessage',
        resource: 'arn:aws:sqs:eu-west-1:000000000000:Graph',
        region: 'eu-west-1',
        queueUrl: 'http://127.0.0.1:4566/queue/eu-west-1/000000000000/Graph',
        kmsVia: { service: 'sqs', actions: ['kms:GenerateDataKey', 'kms:Decrypt'] },
      },
    ]);
    expect(permissionsFor(json('sqs', 'DeleteMessageBatch', { QueueUrl: 'http://x/queue/us-east-1/000000000000/Q' }))[0]!.action).toBe('sqs:DeleteMessage');
    expect(permissionsFor(json('sqs', 'GetQueueUrl', { QueueName: 'host-1' }))[0]!.resource).toBe('arn:aws:sqs:us-east-1:000000000000:host-1');
    // Tags at creation need sqs:TagQueue as well.
    expect(permissionsFor(json('sqs', 'CreateQueue', { QueueName: 'S', tags: { k: 'v' } })).map((permission) => permission.action)).toEqual([
      'sqs:CreateQueue',
      'sqs:TagQueue',
    ]);
  });

  it('leaves KMS keys named by alias or id to be resolved, with the encryption context as condition keys', () => {
    expect(permissionsFor(json('kms', 'Sign', { KeyId: 'alias/stratoplane/api-tokens' }))).toEqual([
      { action: 'kms:Sign', resource: '', kmsKeyId: 'alias/stratoplane/api-tokens', context: {} },
    ]);
    const decrypt = permissionsFor(
      json('kms', 'Decrypt', { KeyId: 'arn:aws:kms:eu-west-1:000000000000:key/k', EncryptionContext: { purpose: 'network-pair' } }),
    );
    expect(decrypt).toEqual([
      {
        action: 'kms:Decrypt',
        resource: '',
        kmsKeyId: 'arn:aws:kms:eu-west-1:000000000000:key/k',
        region: 'eu-west-1',
        context: { 'kms:EncryptionContext:purpose': 'network-pair', 'kms:EncryptionContextKeys': ['purpose'] },
      },
    ]);
    // A ciphertext names its own key: nothing to resolve before the answer.
    expect(permissionsFor(json('kms', 'Decrypt', { CiphertextBlob: 'x' }))[0]!.kmsKeyId).toBe('');
  });

  it('maps S3 requests to object or bucket ARNs, copies to both ends, and SSE-KMS to the key actions S3 takes', () => {
    expect(s3OperationOf('GET', url('/b?uploads'), {})).toBe('ListMultipartUploads');
    expect(s3OperationOf('POST', url('/b/k?uploads'), {})).toBe('CreateMultipartUpload');
    expect(permissionsFor(rest('PUT', '/b/images/i-1/part?partNumber=1&uploadId=u'))).toEqual([
      { action: 's3:PutObject', resource: 'arn:aws:s3:::b/images/i-1/part', kmsVia: { service: 's3', actions: ['kms:Decrypt'] } },
    ]);
    expect(permissionsFor(rest('GET', '/b/k?attributes')).map((permission) => permission.action)).toEqual(['s3:GetObject', 's3:GetObjectAttributes']);
    expect(permissionsFor(rest('HEAD', '/b/k'))).toEqual([{ action: 's3:GetObject', resource: 'arn:aws:s3:::b/k' }]);
    expect(permissionsFor(rest('PUT', '/b/k?partNumber=1&uploadId=u', { 'x-amz-copy-source': '/src-bucket/images/a%20b' }))).toEqual([
      { action: 's3:PutObject', resource: 'arn:aws:s3:::b/k', kmsVia: { service: 's3', actions: ['kms:Decrypt'] } },
      { action: 's3:GetObject', resource: 'arn:aws:s3:::src-bucket/images/a b', kmsVia: { service: 's3', actions: ['kms:Decrypt'] } },
    ]);
    expect(permissionsFor(rest('GET', '/b?list-type=2&prefix=images/'))).toEqual([
      { action: 's3:ListBucket', resource: 'arn:aws:s3:::b', context: { 's3:prefix': 'images/' } },
    ]);
    expect(permissionsFor(rest('DELETE', '/b/k?uploadId=u'))[0]!.action).toBe('s3:AbortMultipartUpload');
  });
});
