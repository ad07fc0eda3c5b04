import { describe, expect, it } from 'vitest';
import { describeJsonRequest, s3ActionOf, serviceOf } from '../../local/aws/aws-calls.ts';

describe('what an AWS request is, as the counting proxy sees it', () => {
  const url = (path: string) => new URL(path, 'http://aws');

  it('takes JSON-protocol services and actions from the target header', () => {
    expect(serviceOf({ 'x-amz-target': 'DynamoDB_20120810.TransactWriteItems' }, url('/'))).toEqual({ service: 'dynamodb', action: 'TransactWriteItems' });
    expect(serviceOf({ 'x-amz-target': 'DynamoDBStreams_20120810.GetRecords' }, url('/'))).toEqual({ service: 'dynamodbstreams', action: 'GetRecords' });
    expect(serviceOf({ 'x-amz-target': 'AmazonSQS.ReceiveMessage' }, url('/'))).toEqual({ service: 'sqs', action: 'ReceiveMessage' });
    expect(serviceOf({ 'x-amz-target': 'TrentService.Sign' }, url('/'))).toEqual({ service: 'kms', action: 'Sign' });
  });

  it('takes REST services from the signature scope, in the header or a presigned URL', () => {
    expect(serviceOf({ authorization: 'AWS4-HMAC-SHA256 Credential=test/20261202/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=x' }, url('/b/k'))).toEqual({ service: 's3' });
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
    expect(describeJsonRequest('dynamodb', 'TransactWriteItems', { TransactItems: [{ Put: { TableName: 'T' } }, { Update: { TableName: 'T' } }, { ConditionCheck: { TableName: 'T' } }] })).toEqual({ resource: 'T', items: 3 });
    expect(describeJsonRequest('dynamodb', 'BatchWriteItem', { RequestItems: { T: [{}, {}], U: [{}] } })).toMatchObject({ resource: 'T', items: 3 });
    expect(describeJsonRequest('dynamodb', 'Query', { TableName: 'T', ConsistentRead: true })).toEqual({ resource: 'T', items: 1, consistentRead: true });
    expect(describeJsonRequest('sqs', 'SendMessageBatch', { QueueUrl: 'http://h/000000000000/q-1', Entries: [{}, {}] })).toEqual({ resource: 'q-1', items: 2 });
    expect(describeJsonRequest('kms', 'Sign', { KeyId: 'alias/k' })).toEqual({ resource: 'alias/k', items: 1 });
  });
});
