import type { z } from 'zod';
import type * as responses from '#events/responses.ts';
import { randomBytes, X509Certificate } from 'node:crypto';
import { PutCommand, TransactWriteCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import type { RegisterHostRequest } from '#events/api.ts';
import type { HostItem } from '#events/records.ts';
import { dynamodb } from '../platform/clients.ts';
import { ClientError, ConflictError, NotFoundError, ValidationError } from '../core/errors.ts';
import { backoff, cancellationCodes, getItem, queryAll } from '../core/store.ts';
import { indexes, indexKeys, keys } from '../core/table-keys.ts';
import { healthOf, type Liveness } from './host-health.ts';
import { checkMigrationCertificate } from './migration-certificates.ts';
import { placementIndexAttributes, placementIndexUpdate, runsVms, updateExpression } from './placement.ts';

/** What the API answers: the schema in `events/responses.ts` is the one source. */
export type HostView = z.infer<typeof responses.Host>;

/** The host as the API shows it, with its health from `liveness` (its last heartbeat) at `nowMs`. */
export const toHostView = (
  {
    hostId,
    address,
    region,
    capacity,
    vmCount,
    queueUrl,
    vmRuntime,
    accelerator,
    liveMigration,
    migrationCertificate,
    autoPlacement,
    cordoned,
    drainStartedAt,
    drainStuck,
    drainTargetHostId,
    createdAt,
  }: HostItem,
  liveness: Liveness,
  nowMs: number,
): HostView => ({
  hostId,
  address,
  region,
  capacity,
  vmCount,
  queueUrl,
  ...(vmRuntime ? { vmRuntime } : {}),
  ...(accelerator ? { accelerator } : {}),
  ...(liveMigration ? { liveMigration } : {}),
  ...(migrationCertificate ? { migrationCertificateSha256: new X509Certificate(migrationCertificate).fingerprint256 } : {}),
  health: healthOf(liveness, nowMs),
  ...(liveness.lastSeenMs !== undefined ? { lastSeen: new Date(liveness.lastSeenMs).toISOString() } : {}),
  autoPlacement: autoPlacement ?? 'on',
  cordoned: cordoned === true,
  ...(drainStartedAt
    ? { drain: { startedAt: drainStartedAt, vmsLeft: vmCount, stuck: drainStuck ?? [], ...(drainTargetHostId ? { targetHostId: drainTargetHostId } : {}) } }
    : {}),
  createdAt,
});

export { chooseHost, runsVms } from './placement.ts';

/** Why a host named for a VM (pinned, or a migration's target) cannot take it: it runs no VMs. */
export function cannotRunVmsError(host: HostItem, field: 'hostId' | 'targetHostId'): ConflictError | undefined {
  if (runsVms(host)) return undefined;
  return new ConflictError(
    `${field}: host ${host.hostId} cannot run VMs: its agent registered vmRuntime none (no QEMU or no root there, or started with --runtime none); pick another host`,
  );
}

/** Refuses (409) a host named for a VM that runs no VMs, saying why. */
export function assertRunsVms(host: HostItem, field: 'hostId' | 'targetHostId'): void {
  const error = cannotRunVmsError(host, field);
  if (error) throw error;
}

/**
 * The opaque name a host goes by in the tokens its VMs carry to outside origins, where its id
 * (and so the physical placement of a tenant's VMs) has no business: made at the host's first
 * credential, kept on its item, so all its tokens name it alike and an operator can trace one back.
 */
export async function hostTokenRef(table: string, host: HostItem): Promise<string> {
  if (host.tokenRef) return host.tokenRef;
  const { Attributes } = await dynamodb.send(
    new UpdateCommand({
      TableName: table,
      Key: keys.host(host.hostId),
      UpdateExpression: 'SET tokenRef = if_not_exists(tokenRef, :ref)',
      ConditionExpression: 'attribute_exists(pk)',
      ExpressionAttributeValues: { ':ref': `hr-${randomBytes(10).toString('hex')}` },
      ReturnValues: 'ALL_NEW',
    }),
  );
  return (Attributes as HostItem).tokenRef!;
}

/** Which host an underlay address is, in one region (keys.hostAddress). Never released: a host keeps its address (a move is refused) and is never removed. */
interface HostAddressItem {
  kind: 'host-address';
  hostId: string;
  address: string;
  region: string;
}

/**
 * Registers a host, creating its message queue first. Registering again with the same address
 * returns the host, so an agent can register on every start; what it says it runs VMs with
 * (`vmRuntime`, `accelerator`) replaces what it said before (an agent restarted without QEMU says
 * `none`), and leaving it out changes nothing. A different address is refused because tunnels
 * elsewhere still point at the old one. So is an address another host of the region has: with two
 * hosts at one tunnel endpoint, forwarding to either would be ambiguous. The host and its address
 * item are written in one transaction, so of two hosts racing for an address one gets it.
 */
export async function registerHost(
  table: string,
  region: string,
  request: RegisterHostRequest,
  ensureQueue: (hostId: string) => Promise<string>,
): Promise<{ host: HostItem; created: boolean }> {
  if (request.accelerator && request.vmRuntime !== 'qemu') throw new ValidationError('body.accelerator: only a host with vmRuntime qemu has one');
  if (request.liveMigration && request.vmRuntime !== 'qemu') throw new ValidationError('body.liveMigration: only a host with vmRuntime qemu moves guests live');
  checkMigrationCertificate(request);
  const [existing, holder] = await Promise.all([getItem<HostItem>(table, keys.host(request.hostId)), addressHolder(table, region, request.address)]);
  if (existing) return { host: await registerAgain(table, region, existing, request, holder), created: false };
  // Refused before a queue is made for it; the transaction below settles a race.
  if (holder !== undefined && holder !== request.hostId) throw addressTakenError(request.address, region, holder);

  const item: HostItem & Record<string, unknown> = {
    ...keys.host(request.hostId),
    kind: 'host',
    hostId: request.hostId,
    address: request.address,
    region,
    capacity: request.capacity,
    ...(request.vmRuntime ? { vmRuntime: request.vmRuntime } : {}),
    ...(request.accelerator ? { accelerator: request.accelerator } : {}),
    ...(request.liveMigration ? { liveMigration: true } : {}),
    ...(request.migrationCertificate ? { migrationCertificate: request.migrationCertificate } : {}),
    ...(request.autoPlacement === 'off' ? { autoPlacement: 'off' } : {}),
    vmCount: 0,
    queueUrl: await ensureQueue(request.hostId),
    createdAt: new Date().toISOString(),
    gsi1pk: indexKeys.allHosts,
    gsi1sk: request.hostId,
    // In the placement index from the start (none for a host that runs no VMs).
    ...placementIndexAttributes(
      { hostId: request.hostId, capacity: request.capacity, vmCount: 0, vmRuntime: request.vmRuntime, autoPlacement: request.autoPlacement },
      region,
    ),
  };
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    try {
      await dynamodb.send(
        new TransactWriteCommand({
          TransactItems: [
            { Put: { TableName: table, Item: item, ConditionExpression: 'attribute_not_exists(pk)' } },
            { Put: addressClaim(table, region, request) },
          ],
        }),
      );
      return { host: item, created: true };
    } catch (error) {
      const codes = cancellationCodes(error);
      if (!codes) throw error;
      if (codes[1] === 'ConditionalCheckFailed') throw addressTakenError(request.address, region, await addressHolder(table, region, request.address));
      if (codes[0] === 'ConditionalCheckFailed') {
        // A concurrent registration of this host won; answer as if we had come second.
        const winner = await getItem<HostItem>(table, keys.host(request.hostId));
        return { host: await registerAgain(table, region, winner!, request), created: false };
      }
      // A concurrent registration held the host or the address (a transaction conflict): try again.
      await backoff(attempt);
    }
  }
  throw new ClientError(503, `registering host ${request.hostId} is contended by concurrent registrations; retry`);
}

const MAX_ATTEMPTS = 10;

/**
 * A registered host registering again: at the same address in the same region, or refused. One
 * registered before addresses were claimed (no holder yet) claims its address now.
 */
async function registerAgain(table: string, region: string, existing: HostItem, request: RegisterHostRequest, holder?: string): Promise<HostItem> {
  const host = sameAddressOrThrow(existing, request, region);
  if (holder !== host.hostId) {
    try {
      await dynamodb.send(new PutCommand(addressClaim(table, region, request)));
    } catch (error) {
      if (!(error instanceof ConditionalCheckFailedException)) throw error;
      throw addressTakenError(request.address, region, await addressHolder(table, region, request.address));
    }
  }
  return updateRuntime(table, region, host, request);
}

/** The write that makes `request.address` the host's in `region`: on the condition that no other host has it. */
function addressClaim(table: string, region: string, request: RegisterHostRequest) {
  const item: HostAddressItem & Record<string, unknown> = {
    ...keys.hostAddress(region, request.address),
    kind: 'host-address',
    hostId: request.hostId,
    address: request.address,
    region,
  };
  return {
    TableName: table,
    Item: item,
    ConditionExpression: 'attribute_not_exists(pk) OR hostId = :hostId',
    ExpressionAttributeValues: { ':hostId': request.hostId },
  };
}

/** Which host has an underlay address in a region, if any. */
async function addressHolder(table: string, region: string, address: string): Promise<string | undefined> {
  return (await getItem<HostAddressItem>(table, keys.hostAddress(region, address)))?.hostId;
}

function addressTakenError(address: string, region: string, holder: string | undefined): ConflictError {
  return new ConflictError(
    `address: ${address} is already the address of ${holder ? `host ${holder}` : 'another host'} in ${region}; each host needs an underlay address of its own`,
  );
}

/**
 * Records what a registered host now says it runs VMs with, and whether placement may choose it,
 * when it says something else, and puts it where it belongs in the placement index (placement.ts):
 * in it while it runs VMs (and is not cordoned, nor auto-placement off), out of it otherwise. A
 * host registered before the index existed is put in it here, at its agent's next start (agents
 * register at every start).
 */
async function updateRuntime(table: string, region: string, host: IndexedHost, request: RegisterHostRequest): Promise<HostItem> {
  const runtimeChanged =
    request.vmRuntime !== undefined &&
    (host.vmRuntime !== request.vmRuntime ||
      host.accelerator !== request.accelerator ||
      Boolean(host.liveMigration) !== Boolean(request.liveMigration) ||
      host.migrationCertificate !== request.migrationCertificate);
  const vmRuntime = request.vmRuntime ?? host.vmRuntime;
  const autoPlacement = request.autoPlacement ?? host.autoPlacement ?? 'on';
  const autoPlacementChanged = autoPlacement !== (host.autoPlacement ?? 'on');
  const index = placementIndexUpdate({ ...host, ...(vmRuntime ? { vmRuntime } : {}), autoPlacement }, host.gsi5pk, host.region ?? region);
  if (!runtimeChanged && !autoPlacementChanged && index.set.length + index.remove.length === 0) return host;
  const set = [...index.set];
  const remove = [...index.remove];
  const values: Record<string, unknown> = { ...index.values, ':address': request.address };
  if (runtimeChanged) {
    set.push('vmRuntime = :runtime', 'liveMigration = :live');
    Object.assign(values, { ':runtime': request.vmRuntime, ':live': Boolean(request.liveMigration) });
    if (request.accelerator) {
      set.push('accelerator = :accelerator');
      values[':accelerator'] = request.accelerator;
    } else remove.push('accelerator');
    if (request.migrationCertificate) {
      set.push('migrationCertificate = :certificate');
      values[':certificate'] = request.migrationCertificate;
    } else remove.push('migrationCertificate');
  }
  if (autoPlacementChanged) {
    if (autoPlacement === 'off') {
      set.push('autoPlacement = :autoPlacement');
      values[':autoPlacement'] = 'off';
    } else remove.push('autoPlacement');
  }
  const update = dynamodb.send(
    new UpdateCommand({
      TableName: table,
      Key: keys.host(host.hostId),
      UpdateExpression: updateExpression({ set, remove }),
      // Its address was checked on the item read; one changed meanwhile is refused as ever.
      ConditionExpression: 'attribute_exists(pk) AND address = :address',
      ...(Object.keys(index.names).length > 0 ? { ExpressionAttributeNames: index.names } : {}),
      ExpressionAttributeValues: values,
      ReturnValues: 'ALL_NEW',
    }),
  );
  try {
    return (await update).Attributes as HostItem;
  } catch (error) {
    if (error instanceof ConditionalCheckFailedException) throw new ConflictError(`address: host ${host.hostId} is no longer registered at ${request.address}`);
    throw error;
  }
}

/** A host item as read from the table, with its place in the placement index if it has one. */
export type IndexedHost = HostItem & { gsi5pk?: string };

function sameAddressOrThrow(existing: HostItem, request: RegisterHostRequest, region: string): HostItem {
  if (existing.region !== undefined && existing.region !== region) {
    throw new ConflictError(`hostId: host ${request.hostId} is registered in ${existing.region}; its agent talks to that region's API`);
  }
  if (existing.address !== request.address) {
    throw new ConflictError(`address: host ${request.hostId} is already registered at ${existing.address}`);
  }
  return existing;
}

export async function getHost(table: string, hostId: string): Promise<HostItem> {
  const host = await getItem<HostItem>(table, keys.host(hostId));
  if (!host) throw new NotFoundError('host', hostId);
  return host;
}

/** Every host, for operators (GET /hosts). Placement does not read this: it reads the placement index (placement-index.ts). */
export async function listHosts(table: string): Promise<HostItem[]> {
  return queryAll<HostItem>({
    TableName: table,
    IndexName: indexes.gsi1,
    KeyConditionExpression: 'gsi1pk = :pk',
    ExpressionAttributeValues: { ':pk': indexKeys.allHosts },
  });
}
