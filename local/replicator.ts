import path from 'node:path';
import { DeleteItemCommand, DescribeTableCommand, DynamoDBClient, GetItemCommand, PutItemCommand, type AttributeValue } from '@aws-sdk/client-dynamodb';
import { deploymentFromEnvironment, metadataTableName } from '#events/naming.ts';
import { Checkpoints } from './checkpoints.ts';
import { StreamPoller, type BatchTarget } from './stream-poller.ts';

const log = (message: string) => console.error(`[replicator] ${message}`);

/** A stream record as the poller delivers it (Lambda's shape: binary values base64-encoded). */
interface ReplicatedRecord {
  eventName: 'INSERT' | 'MODIFY' | 'REMOVE';
  dynamodb: { Keys: Record<string, JsonAttributeValue>; NewImage?: Record<string, JsonAttributeValue> };
}
type JsonAttributeValue = Record<string, unknown>;

/**
 * What DynamoDB global tables do on AWS, for the local AWS: every write to one region's table is
 * applied to the same table in every other region. LocalStack keeps one physical table for all
 * replicas and cannot run transactions against a replica region, so each region's runner owns a
 * real table and this process replicates between them by reading each table's stream.
 *
 * Writes it makes show up in the target's stream too; it recognises those echoes and does not
 * send them back. Like global tables it does not merge: the control plane writes each item from
 * one region only (its home), so no item has concurrent writers in two regions.
 */
export class Replicator {
  private readonly clients: Map<string, DynamoDBClient>;
  /** Images this process wrote, per region and key, not yet seen again in that region's stream. */
  private readonly echoes = new Map<string, string[]>();
  readonly applied = { writes: 0, deletes: 0, skipped: 0 };

  constructor(
    private readonly tableName: string,
    private readonly regions: readonly string[],
  ) {
    this.clients = new Map(regions.map((region) => [region, new DynamoDBClient({ region })]));
  }

  /** The target that receives `source`'s stream batches. */
  targetFor(source: string): BatchTarget {
    return {
      spec: { functionName: `replicate ${source} → ${this.regions.filter((region) => region !== source).join(', ')}` },
      invoke: async <T>(event: unknown) => {
        for (const record of (event as { Records: ReplicatedRecord[] }).Records) await this.replicate(source, record);
        return { batchItemFailures: [] } as T;
      },
    };
  }

  private async replicate(source: string, record: ReplicatedRecord) {
    const keys = toSdk(record.dynamodb.Keys);
    const image = record.eventName === 'REMOVE' ? undefined : toSdk(record.dynamodb.NewImage!);
    const fingerprint = image ? canonical(image) : 'REMOVED';
    if (this.takeEcho(source, keys, fingerprint)) return;
    for (const target of this.regions) {
      if (target === source) continue;
      const client = this.clients.get(target)!;
      const { Item } = await client.send(new GetItemCommand({ TableName: this.tableName, Key: keys, ConsistentRead: true }));
      // Already so: writing would only echo back.
      if ((Item ? canonical(Item) : 'REMOVED') === fingerprint) {
        this.applied.skipped++;
        continue;
      }
      this.addEcho(target, keys, fingerprint);
      if (image) {
        await client.send(new PutItemCommand({ TableName: this.tableName, Item: image }));
        this.applied.writes++;
      } else {
        await client.send(new DeleteItemCommand({ TableName: this.tableName, Key: keys }));
        this.applied.deletes++;
      }
    }
  }

  private echoKey = (region: string, keys: Record<string, AttributeValue>) => `${region}|${canonical(keys)}`;

  private addEcho(region: string, keys: Record<string, AttributeValue>, fingerprint: string) {
    const key = this.echoKey(region, keys);
    this.echoes.set(key, [...(this.echoes.get(key) ?? []), fingerprint]);
  }

  private takeEcho(region: string, keys: Record<string, AttributeValue>, fingerprint: string): boolean {
    const key = this.echoKey(region, keys);
    const pending = this.echoes.get(key);
    const index = pending?.indexOf(fingerprint) ?? -1;
    if (index === -1) return false;
    pending!.splice(index, 1);
    if (pending!.length === 0) this.echoes.delete(key);
    return true;
  }
}

/** Lambda-shaped attribute values back to the SDK's: binary values arrive base64-encoded. */
function toSdk(image: Record<string, JsonAttributeValue>): Record<string, AttributeValue> {
  const convert = (value: JsonAttributeValue): AttributeValue => {
    const [[type, content]] = Object.entries(value) as [[string, unknown]];
    switch (type) {
      case 'B':
        return { B: Buffer.from(content as string, 'base64') };
      case 'BS':
        return { BS: (content as string[]).map((item) => Buffer.from(item, 'base64')) };
      case 'M':
        return { M: toSdk(content as Record<string, JsonAttributeValue>) };
      case 'L':
        return { L: (content as JsonAttributeValue[]).map(convert) };
      default:
        return value as unknown as AttributeValue;
    }
  };
  return Object.fromEntries(Object.entries(image).map(([name, value]) => [name, convert(value)]));
}

/** A stable text of an item: attribute order and set order do not matter to DynamoDB. */
function canonical(value: unknown): string {
  const normalize = (item: unknown): unknown => {
    if (item instanceof Uint8Array) return Buffer.from(item).toString('base64');
    if (Array.isArray(item)) return item.map(normalize);
    if (item && typeof item === 'object') {
      const entries = Object.entries(item).map(([key, inner]) => {
        const normalized = normalize(inner);
        return [key, ['SS', 'NS', 'BS'].includes(key) ? [...(normalized as string[])].sort() : normalized] as const;
      });
      return Object.fromEntries(entries.sort(([a], [b]) => (a < b ? -1 : 1)));
    }
    return item;
  };
  return JSON.stringify(normalize(value));
}

async function main() {
  const regions = (process.env.STRATOPLANE_REGIONS ?? '').split(',').filter(Boolean);
  const tableName = process.env.STRATOPLANE_TABLE_NAME ?? metadataTableName(deploymentFromEnvironment());
  const stateDir = process.env.STRATOPLANE_STATE_DIR ?? '.local-run';
  if (regions.length < 2) throw new Error('STRATOPLANE_REGIONS must name at least two regions to replicate between');
  const replicator = new Replicator(tableName, regions);
  const checkpoints = new Checkpoints(path.join(stateDir, 'replicator-checkpoints.json'));
  const pollers = await Promise.all(
    regions.map(async (region) => {
      const { Table } = await new DynamoDBClient({ region }).send(new DescribeTableCommand({ TableName: tableName }));
      if (!Table?.LatestStreamArn) throw new Error(`table ${tableName} in ${region} has no stream`);
      const poller = new StreamPoller(
        {
          uuid: `replicator@${Table.LatestStreamArn}`,
          streamArn: Table.LatestStreamArn,
          batchSize: 100,
          startingPosition: 'TRIM_HORIZON',
          reportBatchItemFailures: true,
          bisectOnError: false,
          maximumRetryAttempts: -1,
          pollIntervalMs: Number(process.env.STRATOPLANE_STREAM_POLL_MS ?? 250),
          region,
        },
        replicator.targetFor(region),
        checkpoints,
        log,
      );
      poller.start();
      return poller;
    }),
  );
  log(`replicating ${tableName} between ${regions.join(', ')}`);
  console.log(`STRATOPLANE_REPLICATOR_READY ${JSON.stringify({ tableName, regions })}`);
  const stop = () => {
    for (const poller of pollers) poller.stop();
    log(`stopping after ${replicator.applied.writes} writes, ${replicator.applied.deletes} deletes, ${replicator.applied.skipped} already in place`);
    process.exit(0);
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((error: Error) => {
    log(`failed: ${error.stack ?? error.message}`);
    process.exit(1);
  });
}
