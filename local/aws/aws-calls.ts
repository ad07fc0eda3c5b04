import type { IncomingHttpHeaders } from 'node:http';

/** One AWS API call as it crossed the wire: what was asked of which service, about what. */
export interface AwsCall {
  service: string;
  action: string;
  /** The table, queue (its name), key or bucket the call is about, when it names one. */
  resource?: string;
  /** Items a batch or transaction carries (TransactWriteItems, BatchWriteItem, SendMessageBatch, …); 1 otherwise. */
  items: number;
  /** DynamoDB reads: strongly consistent. */
  consistentRead?: boolean;
  requestBytes: number;
  responseBytes: number;
}

const targetServices: Record<string, string> = {
  DynamoDB_20120810: 'dynamodb',
  DynamoDBStreams_20120810: 'dynamodbstreams',
  TrentService: 'kms',
  AmazonSQS: 'sqs',
};

/** Which service a request is for: its JSON target, else its SigV4 credential scope (header or presigned query). */
export function serviceOf(headers: IncomingHttpHeaders, url: URL): { service: string; action?: string } {
  const target = headers['x-amz-target'];
  if (typeof target === 'string') {
    const [prefix, action] = target.split('.');
    return { service: targetServices[prefix!] ?? prefix!.toLowerCase(), action };
  }
  const credential = /Credential=[^/]+\/\d{8}\/[^/]+\/([^/]+)\//.exec(String(headers.authorization ?? ''))?.[1] ?? url.searchParams.get('X-Amz-Credential')?.split('/')[3];
  return { service: credential ?? 'unknown' };
}

/** The REST operation an S3 request is, from its method, path and sub-resource. */
export function s3ActionOf(method: string, url: URL, headers: IncomingHttpHeaders): string {
  const params = url.searchParams;
  const copies = headers['x-amz-copy-source'] !== undefined;
  const isObject = url.pathname.split('/').filter(Boolean).length > 1;
  if (params.has('uploads')) return 'CreateMultipartUpload';
  if (params.has('uploadId')) {
    if (method === 'PUT') return copies ? 'UploadPartCopy' : 'UploadPart';
    if (method === 'POST') return 'CompleteMultipartUpload';
    if (method === 'DELETE') return 'AbortMultipartUpload';
    return 'ListParts';
  }
  if (params.has('attributes')) return 'GetObjectAttributes';
  if (!isObject) return method === 'GET' ? (params.has('list-type') ? 'ListObjectsV2' : 'ListObjects') : `${method} bucket`;
  if (method === 'PUT' && copies) return 'CopyObject';
  return { GET: 'GetObject', HEAD: 'HeadObject', PUT: 'PutObject', DELETE: 'DeleteObject' }[method] ?? `${method} object`;
}

/** Items, table and consistency of a JSON-protocol request body. */
export function describeJsonRequest(service: string, action: string, body: Record<string, any>): Pick<AwsCall, 'resource' | 'items' | 'consistentRead'> {
  if (service === 'dynamodb') {
    if (action === 'TransactWriteItems' || action === 'TransactGetItems') {
      const items = (body.TransactItems ?? []) as Record<string, { TableName?: string }>[];
      return { resource: Object.values(items[0] ?? {})[0]?.TableName, items: items.length };
    }
    if (action === 'BatchWriteItem' || action === 'BatchGetItem') {
      const tables = Object.entries((body.RequestItems ?? {}) as Record<string, any>);
      const items = tables.reduce((sum, [, request]) => sum + (Array.isArray(request) ? request.length : (request.Keys?.length ?? 0)), 0);
      return { resource: tables[0]?.[0], items, consistentRead: tables.some(([, request]) => request.ConsistentRead === true) };
    }
    return { resource: body.TableName, items: 1, consistentRead: body.ConsistentRead === true };
  }
  if (service === 'sqs') {
    const items = Array.isArray(body.Entries) ? body.Entries.length : 1;
    return { resource: typeof body.QueueUrl === 'string' ? body.QueueUrl.split('/').pop() : body.QueueName, items };
  }
  if (service === 'kms') return { resource: body.KeyId, items: 1 };
  return { items: 1 };
}
