import {
  DescribeStreamCommand,
  DynamoDBStreamsClient,
  ExpiredIteratorException,
  GetRecordsCommand,
  GetShardIteratorCommand,
  TrimmedDataAccessException,
  type _Record as StreamRecord,
  type Shard,
} from '@aws-sdk/client-dynamodb-streams';
import { SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import type { Checkpoints } from './checkpoints.ts';

/** Whose credentials a mapping polls with: its function's role, as Lambda does; the default chain's when absent (the replicator). */
export interface PollerCredentials {
  accessKeyId: string;
  secretAccessKey: string;
}

const streamsClients = new Map<string, DynamoDBStreamsClient>();
const streamsIn = (region: string, credentials?: PollerCredentials) => {
  const key = `${region}|${credentials?.accessKeyId ?? ''}`;
  let client = streamsClients.get(key);
  // Bounded requests: a poller must never wait forever on one call.
  if (!client) {
    client = new DynamoDBStreamsClient({ region, credentials, requestHandler: { requestTimeout: 10_000, connectionTimeout: 5_000 } });
    streamsClients.set(key, client);
  }
  return client;
};
const sqsClients = new Map<string, SQSClient>();
const sqsAs = (credentials?: PollerCredentials) => {
  const key = credentials?.accessKeyId ?? '';
  let client = sqsClients.get(key);
  if (!client) {
    client = new SQSClient({ credentials });
    sqsClients.set(key, client);
  }
  return client;
};

/** What a stream mapping delivers batches to: a local function, or the runner's own replicator. */
export interface BatchTarget {
  spec: { functionName: string };
  invoke<T = unknown>(event: unknown): Promise<T>;
}

export interface StreamMappingConfig {
  uuid: string;
  streamArn: string;
  batchSize: number;
  startingPosition: 'TRIM_HORIZON' | 'LATEST';
  reportBatchItemFailures: boolean;
  bisectOnError: boolean;
  /** -1 means retry until the records expire, as on AWS. */
  maximumRetryAttempts: number;
  onFailureQueueUrl?: string;
  pollIntervalMs: number;
  region: string;
  credentials?: PollerCredentials;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * A DynamoDB Streams event source mapping: polls every shard, in order, delivers Lambda-shaped
 * batches, retries from the first reported failure, bisects a failing batch when configured,
 * and past the retry limit sends the batch's description to the on-failure queue and moves on.
 */
export class StreamPoller {
  private stopped = false;
  private readonly active = new Map<string, Promise<void>>();
  private readonly finished = new Set<string>();

  constructor(
    private readonly config: StreamMappingConfig,
    private readonly fn: BatchTarget,
    private readonly checkpoints: Checkpoints,
    private readonly log: (message: string) => void,
  ) {}

  start(): void {
    void this.discoverLoop();
  }

  stop(): void {
    this.stopped = true;
  }

  private async discoverLoop() {
    while (!this.stopped) {
      try {
        for (const shard of await this.listShards()) {
          const id = shard.ShardId!;
          if (this.active.has(id) || this.finished.has(id)) continue;
          // A child shard waits until its parent is drained, so per-item order holds across splits.
          if (shard.ParentShardId && !this.finished.has(shard.ParentShardId) && this.active.has(shard.ParentShardId)) continue;
          this.active.set(
            id,
            this.pollShard(id).finally(() => {
              this.active.delete(id);
              this.finished.add(id);
            }),
          );
        }
      } catch (error) {
        this.log(`stream ${this.config.streamArn}: describe failed: ${(error as Error).message}`);
      }
      await sleep(5000);
    }
  }

  private async listShards(): Promise<Shard[]> {
    const shards: Shard[] = [];
    let start: string | undefined;
    do {
      const { StreamDescription } = await streamsIn(this.config.region, this.config.credentials).send(
        new DescribeStreamCommand({ StreamArn: this.config.streamArn, ExclusiveStartShardId: start }),
      );
      shards.push(...(StreamDescription?.Shards ?? []));
      start = StreamDescription?.LastEvaluatedShardId;
    } while (start);
    return shards;
  }

  private async iteratorAfter(shardId: string): Promise<string | undefined> {
    const checkpoint = this.checkpoints.get(this.config.uuid, shardId);
    const { ShardIterator } = await streamsIn(this.config.region, this.config.credentials).send(
      new GetShardIteratorCommand({
        StreamArn: this.config.streamArn,
        ShardId: shardId,
        ...(checkpoint ? { ShardIteratorType: 'AFTER_SEQUENCE_NUMBER', SequenceNumber: checkpoint } : { ShardIteratorType: this.config.startingPosition }),
      }),
    );
    return ShardIterator;
  }

  private async pollShard(shardId: string) {
    let iterator = await this.iteratorAfter(shardId);
    while (!this.stopped && iterator) {
      let records: StreamRecord[];
      let next: string | undefined;
      try {
        const page = await streamsIn(this.config.region, this.config.credentials).send(
          new GetRecordsCommand({ ShardIterator: iterator, Limit: this.config.batchSize }),
        );
        records = page.Records ?? [];
        next = page.NextShardIterator;
      } catch (error) {
        if (error instanceof ExpiredIteratorException || error instanceof TrimmedDataAccessException) {
          iterator = await this.iteratorAfter(shardId);
          continue;
        }
        this.log(`stream shard ${shardId}: GetRecords failed: ${(error as Error).message}`);
        await sleep(1000);
        continue;
      }
      if (records.length > 0) {
        await this.deliver(shardId, records);
        if (this.stopped) return;
        this.checkpoints.set(this.config.uuid, shardId, records.at(-1)!.dynamodb!.SequenceNumber!);
      } else {
        await sleep(this.config.pollIntervalMs);
      }
      iterator = next;
    }
  }

  /** Delivers one batch until it succeeds or its retries run out. */
  private async deliver(shardId: string, batch: StreamRecord[]): Promise<void> {
    let remaining = batch;
    let retries = 0;
    while (remaining.length > 0 && !this.stopped) {
      let failedFrom: number;
      try {
        const response = await this.fn.invoke<{ batchItemFailures?: { itemIdentifier?: string }[] } | undefined>(toLambdaEvent(remaining, this.config));
        failedFrom = this.firstFailure(remaining, response);
        if (failedFrom === -1) return;
      } catch (error) {
        this.log(`${this.fn.spec.functionName}: ${(error as Error).message}`);
        if (this.config.bisectOnError && remaining.length > 1) {
          const half = Math.ceil(remaining.length / 2);
          await this.deliver(shardId, remaining.slice(0, half));
          await this.deliver(shardId, remaining.slice(half));
          return;
        }
        failedFrom = 0;
      }
      remaining = remaining.slice(failedFrom);
      this.log(
        `${this.fn.spec.functionName}: batch failed from record ${remaining[0]!.dynamodb?.SequenceNumber} (retry ${retries + 1} of ${this.config.maximumRetryAttempts})`,
      );
      if (this.config.maximumRetryAttempts !== -1 && retries >= this.config.maximumRetryAttempts) {
        await this.sendToOnFailure(shardId, remaining);
        return;
      }
      retries++;
      await sleep(Math.min(5000, 100 * 2 ** retries));
    }
  }

  /** Index of the first record to retry, or -1 when the whole batch succeeded. */
  private firstFailure(batch: StreamRecord[], response: { batchItemFailures?: { itemIdentifier?: string }[] } | undefined): number {
    if (!this.config.reportBatchItemFailures) return -1;
    const failures = response?.batchItemFailures ?? [];
    if (failures.length === 0) return -1;
    const indexes = failures.map((failure) => batch.findIndex((record) => record.dynamodb?.SequenceNumber === failure.itemIdentifier));
    // An identifier that is not in the batch fails the whole batch, as on AWS.
    if (indexes.some((index) => index === -1)) return 0;
    return Math.min(...indexes);
  }

  private async sendToOnFailure(shardId: string, records: StreamRecord[]) {
    const info = {
      requestContext: {
        condition: 'RetryAttemptsExhausted',
        approximateInvokeCount: this.config.maximumRetryAttempts + 1,
        functionArn: this.fn.spec.functionName,
      },
      DDBStreamBatchInfo: {
        shardId,
        startSequenceNumber: records[0]!.dynamodb!.SequenceNumber,
        endSequenceNumber: records.at(-1)!.dynamodb!.SequenceNumber,
        batchSize: records.length,
        streamArn: this.config.streamArn,
      },
      timestamp: new Date().toISOString(),
    };
    this.log(`${this.fn.spec.functionName}: retries exhausted for ${records.length} record(s) of shard ${shardId}`);
    if (this.config.onFailureQueueUrl) {
      await sqsAs(this.config.credentials).send(new SendMessageCommand({ QueueUrl: this.config.onFailureQueueUrl, MessageBody: JSON.stringify(info) }));
    }
  }
}

function toLambdaEvent(records: StreamRecord[], config: StreamMappingConfig) {
  return {
    Records: records.map((record) => ({
      eventID: record.eventID,
      eventName: record.eventName,
      eventVersion: record.eventVersion ?? '1.1',
      eventSource: 'aws:dynamodb',
      awsRegion: config.region,
      eventSourceARN: config.streamArn,
      dynamodb: {
        ...(toJsonShape(record.dynamodb) as Record<string, unknown>),
        ApproximateCreationDateTime: record.dynamodb?.ApproximateCreationDateTime
          ? Math.floor(record.dynamodb.ApproximateCreationDateTime.getTime() / 1000)
          : undefined,
      },
    })),
  };
}

/** The SDK gives binary attributes as bytes; Lambda events carry them base64-encoded. */
function toJsonShape(value: unknown): unknown {
  if (value instanceof Uint8Array) return Buffer.from(value).toString('base64');
  if (value instanceof Date) return value.toISOString();
  if (Array.isArray(value)) return value.map(toJsonShape);
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, toJsonShape(item)]));
  return value;
}
