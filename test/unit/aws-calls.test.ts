import { describe, expect, it } from 'vitest';
import { capacityUnitsOf, describeJsonRequest, indexedPutsOf, isEmptyPoll, s3ActionOf, serviceOf } from '../../local/aws/aws-calls.ts';

describe('what an AWS request is, as the counting proxy sees it', () => {
  const url = (path: string) => new URL(path, 'http://aws');

  it('takes JSON-protocol services and actions from the target header', () => {
    expect(serviceOf({ 'x-amz-target': 'DynamoDB_20120810.TransactWriteItems' }, url('/'))).toEqual({ service: 'dynamodb', action: 'TransactWriteItems' });
    expect(serviceOf({ 'x-amz-target': 'DynamoDBStreams_20120810.GetRecords' }, url('/'))).toEqual({ service: 'dynamodbstreams', action: 'GetRecords' });
    expect(serviceOf({ 'x-amz-target': 'AmazonSQS.ReceiveMessage' }, url('/'))).toEqual({ service: 'sqs', action: 'ReceiveMessage' });
    expect(serviceOf({ 'x-amz-target': 'TrentService.Sign' }, url('/'))).toEqual({ service: 'kms', action: 'Sign' });
  });

  it('takes REST services from the signature scope, in the header or a presigned URL', () => {
    expect(
      serviceOf({ authorization: 'AWS4-HMAC-SHA256 Credential=test/20261202/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=x' }, url('/b/k')),
    ).toEqual({ service: 's3' });
    expect(serviceOf({}, url('/b/k?X-Amz-Credential=test%2F20261202%2Fus-east-1%2Fs3%2Faws4_request&partNumber=1&uploadId=u'))).toEqual({ service: 's3' });
  });

  it('names S3 operations by method, path and sub-resource', () => {
    expect(s3ActionOf('POST', url('/b/k?uploads'), {})).toBe('CreateMultipartUpload');
    expect(s3ActionOf('PUT', url('/b/k?partNumber=2&uploadId=u'), {})).toBe('UploadPart');
    expect(s3ActionOf('PUT', url('/b/k?partNumber=2&uploadId=u'), { 'x-amz-copy-source': '/a/k' })).toBe('UploadPartCopy');
    expect(s3ActionOf('POST', url('/b/k?uploadId=u'), {})).toBe('CompleteMultipartUpload');
    expect(s3ActionOf('GET', url('/b/k'), {})).toBe('GetObject');
    expect(s3ActionOf('GET', url('/b?list-type=2'), {})).toBe('ListObjectsV2');
  });

  it('counts the items of transactions and batches, and notes strongly consistent reads', () => {
    expect(
      describeJsonRequest('dynamodb', 'TransactWriteItems', {
        TransactItems: [{ Put: { TableName: 'T' } }, { Update: { TableName: 'T' } }, { ConditionCheck: { TableName: 'T' } }],
      }),
    ).toEqual({ resource: 'T', items: 3 });
    expect(describeJsonRequest('dynamodb', 'BatchWriteItem', { RequestItems: { T: [{}, {}], U: [{}] } })).toMatchObject({ resource: 'T', items: 3 });
    expect(describeJsonRequest('dynamodb', 'Query', { TableName: 'T', ConsistentRead: true })).toEqual({ resource: 'T', items: 1, consistentRead: true });
    expect(describeJsonRequest('sqs', 'SendMessageBatch', { QueueUrl: 'http://h/000000000000/q-1', Entries: [{}, {}] })).toEqual({ resource: 'q-1', items: 2 });
    expect(describeJsonRequest('kms', 'Sign', { KeyId: 'alias/k' })).toEqual({ resource: 'alias/k', items: 1 });
  });

  it('estimates DynamoDB request units as on-demand billing counts them', () => {
    const call = (action: string, extra: Partial<Parameters<typeof capacityUnitsOf>[0]> = {}) =>
      capacityUnitsOf({ service: 'dynamodb', action, items: 1, requestBytes: 300, responseBytes: 500, ...extra });
    expect(call('GetItem', { consistentRead: true })).toEqual({ read: 1, write: 0 });
    expect(call('GetItem')).toEqual({ read: 0.5, write: 0 });
    expect(call('Query', { consistentRead: true, responseBytes: 9000 })).toEqual({ read: 3, write: 0 });
    expect(call('UpdateItem')).toEqual({ read: 0, write: 1 });
    expect(call('PutItem', { requestBytes: 1500, indexedPuts: 2 })).toEqual({ read: 0, write: 4 });
    // Six small items in a transaction: twice each.
    expect(call('TransactWriteItems', { items: 6, requestBytes: 3000 })).toEqual({ read: 0, write: 12 });
    expect(capacityUnitsOf({ service: 'sqs', action: 'SendMessage', items: 1, requestBytes: 1, responseBytes: 1 })).toEqual({ read: 0, write: 0 });
  });

  it('tells polls that found nothing from those that found something', () => {
    expect(isEmptyPoll({ service: 'sqs', action: 'ReceiveMessage' }, '{}')).toBe(true);
    expect(isEmptyPoll({ service: 'sqs', action: 'ReceiveMessage' }, '{"Messages":[{"Body":"x"}]}')).toBe(false);
    expect(isEmptyPoll({ service: 'dynamodbstreams', action: 'GetRecords' }, '{"Records": [], "NextShardIterator": "i"}')).toBe(true);
    expect(isEmptyPoll({ service: 'dynamodbstreams', action: 'GetRecords' }, '{"Records":[{"eventID":"1"}]}')).toBe(false);
    expect(isEmptyPoll({ service: 'sqs', action: 'SendMessage' }, '{}')).toBe(false);
  });

  it('counts the index entries the items of a put fill', () => {
    expect(indexedPutsOf({ Item: { pk: { S: 'a' }, gsi1pk: { S: 'x' }, gsi3pk: { S: 'y' } } })).toBe(2);
    expect(indexedPutsOf({ TransactItems: [{ Put: { Item: { gsi2pk: {} } } }, { Update: {} }] })).toBe(1);
    expect(indexedPutsOf({ RequestItems: { T: [{ PutRequest: { Item: { gsi4pk: {} } } }, { DeleteRequest: {} }] } })).toBe(1);
  });
});
