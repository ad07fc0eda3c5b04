import type { IncomingHttpHeaders } from 'node:http';

/**
 * What IAM checks for one AWS API call: the actions it authorizes and the resources it names, as
 * AWS documents them per operation (the Service Authorization Reference), from what crossed the
 * wire. One call can need several permissions: a transaction one per item, a copy the source's
 * read and the target's write, a call on an encrypted resource the KMS actions the service takes
 * on the caller's behalf (`kmsVia`).
 */
export interface RequiredPermission {
  /** `service:Action`. */
  action: string;
  /** The resource's ARN, `*` when the action takes none; empty when it is a KMS key still to resolve (`kmsKeyId`). */
  resource: string;
  context?: Record<string, string | string[]>;
  /** A KMS key as the call named it (key id, key ARN, alias name or alias ARN), in `region`: resolved to the key's ARN before evaluation. */
  kmsKeyId?: string;
  /** The region of the resource (a queue's, a key's), when it can differ from the signing region. */
  region?: string;
  /** An SQS queue by URL: its tags are the `aws:ResourceTag/…` of conditions. */
  queueUrl?: string;
  /** The service uses the resource's KMS key (if it has a customer managed one) with the caller's credentials: these actions on it. */
  kmsVia?: { service: string; actions: string[] };
}

/** One AWS call as the proxy saw it, before it went on. */
export interface WireCall {
  service: string;
  /** The API operation when the request names it (JSON protocols' X-Amz-Target); S3 operations are derived here. */
  operation?: string;
  method: string;
  url: URL;
  headers: IncomingHttpHeaders;
  /** The region the request was signed for. */
  region: string;
  accountId: string;
  /** The JSON body of a JSON-protocol request. */
  body?: Record<string, unknown>;
}

/** The caller's access key id, signing region and service, from a SigV4 Authorization header or a presigned URL's X-Amz-Credential. */
export function credentialOf(headers: IncomingHttpHeaders, url: URL): { accessKeyId: string; region: string; service: string } | undefined {
  const scope =
    /Credential=([^,\s]+)/.exec(String(headers.authorization ?? ''))?.[1] ??
    url.searchParams.get('X-Amz-Credential') ??
    url.searchParams.get('x-amz-credential');
  if (!scope) return undefined;
  const [accessKeyId, , region, service] = decodeURIComponent(scope).split('/');
  if (!accessKeyId || !region || !service) return undefined;
  return { accessKeyId, region, service };
}

const dataReads = new Set(['GetItem', 'Query', 'Scan', 'BatchGetItem', 'TransactGetItems']);
const dataWrites = new Set(['PutItem', 'UpdateItem', 'DeleteItem', 'BatchWriteItem', 'TransactWriteItems']);
const transactItemActions: Record<string, string> = {
  Put: 'dynamodb:PutItem',
  Update: 'dynamodb:UpdateItem',
  Delete: 'dynamodb:DeleteItem',
  ConditionCheck: 'dynamodb:ConditionCheckItem',
  Get: 'dynamodb:GetItem',
};

function tableArn(nameOrArn: string, call: WireCall): string {
  return nameOrArn.startsWith('arn:') ? nameOrArn : `arn:aws:dynamodb:${call.region}:${call.accountId}:table/${nameOrArn}`;
}

function dynamodbPermissions(call: WireCall): RequiredPermission[] {
  const operation = call.operation ?? '';
  const body = call.body ?? {};
  const kmsVia = dataReads.has(operation) || dataWrites.has(operation) ? { service: 'dynamodb', actions: ['kms:Decrypt'] } : undefined;
  const withKms = (permission: RequiredPermission): RequiredPermission => (kmsVia ? { ...permission, kmsVia } : permission);
  if (operation === 'TransactWriteItems' || operation === 'TransactGetItems') {
    const items = (body.TransactItems ?? []) as Record<string, { TableName?: string } | undefined>[];
    return items.flatMap((item) =>
      Object.entries(item).flatMap(([kind, request]) =>
        request?.TableName ? [withKms({ action: transactItemActions[kind] ?? `dynamodb:${kind}`, resource: tableArn(request.TableName, call) })] : [],
      ),
    );
  }
  if (operation === 'BatchWriteItem' || operation === 'BatchGetItem') {
    return Object.keys((body.RequestItems ?? {}) as object).map((table) => withKms({ action: `dynamodb:${operation}`, resource: tableArn(table, call) }));
  }
  if (operation === 'ListTables' || operation === 'DescribeLimits' || operation === 'DescribeEndpoints')
    return [{ action: `dynamodb:${operation}`, resource: '*' }];
  const table = (body.TableName ?? body.ResourceArn) as string | undefined;
  if (!table) return [{ action: `dynamodb:${operation}`, resource: '*' }];
  const index = (operation === 'Query' || operation === 'Scan') && typeof body.IndexName === 'string' ? `/index/${body.IndexName}` : '';
  return [withKms({ action: `dynamodb:${operation}`, resource: `${tableArn(table, call)}${index}` })];
}

/** The stream a shard iterator reads: AWS's iterators (and DynamoDB Local's) start with the stream's ARN. */
export function streamArnOfIterator(iterator: unknown): string | undefined {
  if (typeof iterator !== 'string') return undefined;
  return /^(arn:[^|]+:table\/[^/|]+\/stream\/[^|]+)\|/.exec(iterator)?.[1];
}

function dynamodbStreamsPermissions(call: WireCall, streamOfIterator: (iterator: string) => string | undefined): RequiredPermission[] {
  const operation = call.operation ?? '';
  const body = call.body ?? {};
  if (operation === 'GetRecords') {
    const iterator = String(body.ShardIterator ?? '');
    // DynamoDB Local's iterators name its own region (`ddblocal`): the stream asked for is the better witness.
    const fromIterator = streamArnOfIterator(iterator)?.replace(/^(arn:[^:]+:dynamodb:)ddblocal:/, `$1${call.region}:`);
    return [{ action: 'dynamodb:GetRecords', resource: streamOfIterator(iterator) ?? fromIterator ?? '' }];
  }
  if (operation === 'ListStreams') {
    return [{ action: 'dynamodb:ListStreams', resource: typeof body.TableName === 'string' ? `${tableArn(body.TableName, call)}/stream/*` : '*' }];
  }
  return [{ action: `dynamodb:${operation}`, resource: String(body.StreamArn ?? '') }];
}

/**
 * A queue's region, account and name from its URL: `…/queue/<region>/<account>/<name>` (the
 * emulator's path strategy) or `…/<account>/<name>` (AWS's, the region in the host).
 */
export function queueOfUrl(queueUrl: string, signingRegion: string): { region: string; accountId: string; name: string } | undefined {
  const url = new URL(queueUrl);
  const parts = url.pathname.split('/').filter(Boolean);
  if (parts[0] === 'queue' && parts.length === 4) return { region: parts[1]!, accountId: parts[2]!, name: parts[3]! };
  if (parts.length === 2) return { region: /sqs\.([a-z0-9-]+)\./.exec(url.hostname)?.[1] ?? signingRegion, accountId: parts[0]!, name: parts[1]! };
  return undefined;
}

const sqsActions: Record<string, string> = {
  SendMessageBatch: 'sqs:SendMessage',
  DeleteMessageBatch: 'sqs:DeleteMessage',
  ChangeMessageVisibilityBatch: 'sqs:ChangeMessageVisibility',
};

function sqsPermissions(call: WireCall): RequiredPermission[] {
  const operation = call.operation ?? '';
  const body = call.body ?? {};
  const action = sqsActions[operation] ?? `sqs:${operation}`;
  if (operation === 'ListQueues') return [{ action, resource: '*' }];
  let queue: { region: string; accountId: string; name: string } | undefined;
  if (typeof body.QueueUrl === 'string') queue = queueOfUrl(body.QueueUrl, call.region);
  else if (typeof body.QueueName === 'string')
    queue = {
      region: call.region,
      accountId: typeof body.QueueOwnerAWSAccountId === 'string' ? body.QueueOwnerAWSAccountId : call.accountId,
      name: body.QueueName,
    };
  if (!queue) return [{ action, resource: '' }];
  const arn = `arn:aws:sqs:${queue.region}:${queue.accountId}:${queue.name}`;
  const queueUrl = typeof body.QueueUrl === 'string' ? body.QueueUrl : undefined;
  const kmsVia =
    action === 'sqs:SendMessage'
      ? { service: 'sqs', actions: ['kms:GenerateDataKey', 'kms:Decrypt'] }
      : action === 'sqs:ReceiveMessage'
        ? { service: 'sqs', actions: ['kms:Decrypt'] }
        : undefined;
  const permissions: RequiredPermission[] = [{ action, resource: arn, region: queue.region, queueUrl, ...(kmsVia ? { kmsVia } : {}) }];
  // Tags given at creation need the tagging permission too.
  if (operation === 'CreateQueue' && body.tags && Object.keys(body.tags).length > 0)
    permissions.push({ action: 'sqs:TagQueue', resource: arn, region: queue.region });
  return permissions;
}

function kmsPermissions(call: WireCall): RequiredPermission[] {
  const operation = call.operation ?? '';
  const body = call.body ?? {};
  const action = `kms:${operation}`;
  if (['ListAliases', 'ListKeys', 'CreateKey', 'GenerateRandom'].includes(operation) && typeof body.KeyId !== 'string') return [{ action, resource: '*' }];
  const keyId = (operation === 'CreateAlias' || operation === 'UpdateAlias' ? body.TargetKeyId : body.KeyId) as string | undefined;
  const context: Record<string, string | string[]> = {};
  const encryptionContext = body.EncryptionContext as Record<string, string> | undefined;
  if (encryptionContext) {
    for (const [key, value] of Object.entries(encryptionContext)) context[`kms:EncryptionContext:${key}`] = value;
    context['kms:EncryptionContextKeys'] = Object.keys(encryptionContext);
  }
  const region = typeof keyId === 'string' && keyId.startsWith('arn:') ? keyId.split(':')[3] : undefined;
  // Decrypt of a symmetric ciphertext may name no key: it is the one the ciphertext was made with (known from the answer).
  return [{ action, resource: '', kmsKeyId: keyId ?? '', context, ...(region ? { region } : {}) }];
}

/** Bucket and key of a path-style S3 request (`/bucket/key…`). */
export function s3Location(url: URL): { bucket?: string; key?: string } {
  const [, bucket, ...rest] = url.pathname.split('/');
  const key = rest.join('/');
  return { bucket: bucket ? decodeURIComponent(bucket) : undefined, key: key ? decodeURIComponent(key) : undefined };
}

/** The S3 operation a request is, from its method, path and sub-resources. */
export function s3OperationOf(method: string, url: URL, headers: IncomingHttpHeaders): string {
  const params = url.searchParams;
  const { bucket, key } = s3Location(url);
  const copies = headers['x-amz-copy-source'] !== undefined;
  if (!bucket) return method === 'GET' ? 'ListBuckets' : `${method} service`;
  if (!key) {
    if (params.has('uploads')) return 'ListMultipartUploads';
    if (params.has('location')) return 'GetBucketLocation';
    if (params.has('delete') && method === 'POST') return 'DeleteObjects';
    if (method === 'GET') return params.has('list-type') ? 'ListObjectsV2' : 'ListObjects';
    return { HEAD: 'HeadBucket', PUT: 'CreateBucket', DELETE: 'DeleteBucket' }[method] ?? `${method} bucket`;
  }
  if (params.has('uploads')) return 'CreateMultipartUpload';
  if (params.has('uploadId')) {
    if (method === 'PUT') return copies ? 'UploadPartCopy' : 'UploadPart';
    if (method === 'POST') return 'CompleteMultipartUpload';
    if (method === 'DELETE') return 'AbortMultipartUpload';
    return 'ListParts';
  }
  if (params.has('attributes')) return 'GetObjectAttributes';
  if (params.has('tagging')) return { GET: 'GetObjectTagging', PUT: 'PutObjectTagging', DELETE: 'DeleteObjectTagging' }[method] ?? `${method} tagging`;
  if (method === 'PUT' && copies) return 'CopyObject';
  return { GET: 'GetObject', HEAD: 'HeadObject', PUT: 'PutObject', DELETE: 'DeleteObject' }[method] ?? `${method} object`;
}

/** S3's object-level actions per operation (Service Authorization Reference); bucket-level ones below. */
const s3ObjectActions: Record<string, string[]> = {
  GetObject: ['s3:GetObject'],
  HeadObject: ['s3:GetObject'],
  GetObjectAttributes: ['s3:GetObject', 's3:GetObjectAttributes'],
  PutObject: ['s3:PutObject'],
  CopyObject: ['s3:PutObject'],
  CreateMultipartUpload: ['s3:PutObject'],
  UploadPart: ['s3:PutObject'],
  UploadPartCopy: ['s3:PutObject'],
  CompleteMultipartUpload: ['s3:PutObject'],
  AbortMultipartUpload: ['s3:AbortMultipartUpload'],
  ListParts: ['s3:ListMultipartUploadParts'],
  DeleteObject: ['s3:DeleteObject'],
  GetObjectTagging: ['s3:GetObjectTagging'],
  PutObjectTagging: ['s3:PutObjectTagging'],
  DeleteObjectTagging: ['s3:DeleteObjectTagging'],
};
const s3BucketActions: Record<string, string> = {
  ListObjects: 's3:ListBucket',
  ListObjectsV2: 's3:ListBucket',
  HeadBucket: 's3:ListBucket',
  ListMultipartUploads: 's3:ListBucketMultipartUploads',
  GetBucketLocation: 's3:GetBucketLocation',
  CreateBucket: 's3:CreateBucket',
  DeleteBucket: 's3:DeleteBucket',
  ListBuckets: 's3:ListAllMyBuckets',
};
/** What S3 asks of the object's KMS key with the caller's credentials (SSE-KMS). */
const s3KmsActions: Record<string, string[]> = {
  GetObject: ['kms:Decrypt'],
  PutObject: ['kms:GenerateDataKey'],
  CopyObject: ['kms:GenerateDataKey'],
  CreateMultipartUpload: ['kms:GenerateDataKey'],
  // S3 decrypts the upload's data key to store and assemble the parts.
  UploadPart: ['kms:Decrypt'],
  UploadPartCopy: ['kms:Decrypt'],
  CompleteMultipartUpload: ['kms:Decrypt'],
};

function s3Permissions(call: WireCall): RequiredPermission[] {
  const operation = call.operation ?? s3OperationOf(call.method, call.url, call.headers);
  const { bucket, key } = s3Location(call.url);
  const bucketArn = `arn:aws:s3:::${bucket ?? ''}`;
  if (!key) {
    const context: Record<string, string> = {};
    const prefix = call.url.searchParams.get('prefix');
    if (prefix !== null && operation.startsWith('ListObjects')) context['s3:prefix'] = prefix;
    return [{ action: s3BucketActions[operation] ?? `s3:${operation}`, resource: operation === 'ListBuckets' ? '*' : bucketArn, context }];
  }
  const objectArn = `${bucketArn}/${key}`;
  const kmsActions = s3KmsActions[operation];
  const permissions: RequiredPermission[] = (s3ObjectActions[operation] ?? [`s3:${operation}`]).map((action, index) => ({
    action,
    resource: objectArn,
    ...(index === 0 && kmsActions ? { kmsVia: { service: 's3', actions: kmsActions } } : {}),
  }));
  if (operation === 'PutObject' && call.headers['x-amz-tagging'] !== undefined) permissions.push({ action: 's3:PutObjectTagging', resource: objectArn });
  const copySource = call.headers['x-amz-copy-source'];
  if (typeof copySource === 'string' && (operation === 'CopyObject' || operation === 'UploadPartCopy')) {
    const source = decodeURIComponent(copySource.split('?')[0]!.replace(/^\//, ''));
    permissions.push({ action: 's3:GetObject', resource: `arn:aws:s3:::${source}`, kmsVia: { service: 's3', actions: ['kms:Decrypt'] } });
  }
  return permissions;
}

/**
 * The permissions `call` needs. `streamOfIterator` names the stream of a shard iterator that does
 * not carry it (seen in an earlier answer).
 */
export function permissionsFor(call: WireCall, streamOfIterator: (iterator: string) => string | undefined = () => undefined): RequiredPermission[] {
  switch (call.service) {
    case 'dynamodb':
      return dynamodbPermissions(call);
    case 'dynamodbstreams':
      return dynamodbStreamsPermissions(call, streamOfIterator);
    case 'sqs':
      return sqsPermissions(call);
    case 'kms':
      return kmsPermissions(call);
    case 's3':
      return s3Permissions(call);
    default:
      return [{ action: `${call.service}:${call.operation ?? 'Unknown'}`, resource: '' }];
  }
}
