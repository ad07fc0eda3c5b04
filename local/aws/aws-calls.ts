import type { IncomingHttpHeaders } from 'node:http';

/** One AWS API call as it crossed the wire: what was asked of which service, about what. */
export interface AwsCall {
  /** Who made it (see AwsCallTotal). */
  caller?: string;
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

/**
 * The read and write request units a DynamoDB call is billed on demand, from what crossed the
 * wire: reads by 4 KB of what was returned (half for eventually consistent ones, double in a
 * transaction), writes by 1 KB of what was sent (double in a transaction), plus one write per
 * secondary index a put fills. An estimate: item sizes are taken from the JSON on the wire, and
 * an update's index writes are not seen.
 */
export function capacityUnitsOf(
  call: Pick<AwsCall, 'service' | 'action' | 'items' | 'consistentRead' | 'requestBytes' | 'responseBytes'> & { indexedPuts?: number },
): { read: number; write: number } {
  if (call.service !== 'dynamodb') return { read: 0, write: 0 };
  const kb4 = Math.max(1, Math.ceil(call.responseBytes / 4096));
  const kb1 = (bytes: number) => Math.max(1, Math.ceil(bytes / 1024));
  switch (call.action) {
    case 'GetItem':
    case 'Query':
    case 'Scan':
      return { read: call.consistentRead ? kb4 : kb4 / 2, write: 0 };
    case 'BatchGetItem':
      return { read: Math.max(call.items, kb4) * (call.consistentRead ? 1 : 0.5), write: 0 };
    case 'TransactGetItems':
      return { read: 2 * Math.max(call.items, kb4), write: 0 };
    case 'PutItem':
    case 'UpdateItem':
    case 'DeleteItem':
      return { read: 0, write: kb1(call.requestBytes) + (call.indexedPuts ?? 0) };
    case 'BatchWriteItem':
      return { read: 0, write: Math.max(call.items, kb1(call.requestBytes)) + (call.indexedPuts ?? 0) };
    case 'TransactWriteItems':
      // Each item twice, at the average size of the items sent.
      return { read: 0, write: 2 * call.items * kb1(call.requestBytes / Math.max(1, call.items)) + (call.indexedPuts ?? 0) };
    default:
      return { read: 0, write: 0 };
  }
}

/** A poll that found nothing: an empty ReceiveMessage or GetRecords answer. */
export function isEmptyPoll(call: Pick<AwsCall, 'service' | 'action'>, responseBody: string): boolean {
  if (call.service === 'sqs' && call.action === 'ReceiveMessage') return !responseBody.includes('"Messages"');
  if (call.service === 'dynamodbstreams' && call.action === 'GetRecords') return !/"Records":\s*\[\s*\{/.test(responseBody);
  return false;
}

type Item = Record<string, unknown>;
type BatchRequest = { PutRequest?: { Item?: Item }; DeleteRequest?: unknown }[] | { Keys?: unknown[]; ConsistentRead?: boolean };

/** The fields of a JSON-protocol request body (DynamoDB, SQS, KMS) the proxy reads; the rest are left alone. */
export interface JsonRequestBody {
  TableName?: string;
  ConsistentRead?: boolean;
  Item?: Item;
  TransactItems?: Record<string, { TableName?: string; Item?: Item } | undefined>[];
  RequestItems?: Record<string, BatchRequest>;
  QueueUrl?: string;
  QueueName?: string;
  Entries?: unknown[];
  KeyId?: string;
}

/** Secondary-index entries the puts of a write request fill: one per `gsiNpk` attribute of each item put. */
export function indexedPutsOf(body: JsonRequestBody): number {
  const items: Record<string, unknown>[] = [];
  if (body.Item) items.push(body.Item);
  for (const entry of body.TransactItems ?? []) if (entry.Put?.Item) items.push(entry.Put.Item);
  for (const requests of Object.values(body.RequestItems ?? {}))
    for (const request of Array.isArray(requests) ? requests : []) if (request.PutRequest?.Item) items.push(request.PutRequest.Item);
  return items.reduce((sum, item) => sum + Object.keys(item).filter((name) => /^gsi\d+pk$/.test(name)).length, 0);
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
  const credential =
    /Credential=[^/]+\/\d{8}\/[^/]+\/([^/]+)\//.exec(String(headers.authorization ?? ''))?.[1] ?? url.searchParams.get('X-Amz-Credential')?.split('/')[3];
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
export function describeJsonRequest(service: string, action: string, body: JsonRequestBody): Pick<AwsCall, 'resource' | 'items' | 'consistentRead'> {
  if (service === 'dynamodb') {
    if (action === 'TransactWriteItems' || action === 'TransactGetItems') {
      const items = body.TransactItems ?? [];
      return { resource: Object.values(items[0] ?? {})[0]?.TableName, items: items.length };
    }
    if (action === 'BatchWriteItem' || action === 'BatchGetItem') {
      const tables = Object.entries(body.RequestItems ?? {});
      const items = tables.reduce((sum, [, request]) => sum + (Array.isArray(request) ? request.length : (request.Keys?.length ?? 0)), 0);
      return { resource: tables[0]?.[0], items, consistentRead: tables.some(([, request]) => !Array.isArray(request) && request.ConsistentRead === true) };
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
