/**
 * Layout of the single metadata table. A network's partition holds its address slots and its
 * host memberships, so one strongly consistent Query answers "who holds which address" and
 * "which hosts need this network" at a point in time.
 */
export const keys = {
  host: (hostId: string) => ({ pk: `HOST#${hostId}`, sk: 'HOST' }),
  /** Which host an underlay address is, in its region: written with the host, so two hosts never share a tunnel endpoint. */
  hostAddress: (region: string, address: string) => ({ pk: `ADDRESS#${region}#${address}`, sk: 'ADDRESS' }),
  /** A live migration one end of which is this host (source or destination), while it runs: the host's VM configs include that VM. */
  hostMigration: (hostId: string, vmId: string) => ({ pk: `HOST#${hostId}`, sk: `MIGRATION#${vmId}` }),
  network: (networkId: string) => ({ pk: `NET#${networkId}`, sk: 'NET' }),
  vm: (vmId: string) => ({ pk: `VM#${vmId}`, sk: 'VM' }),
  /** What a VM used when the resource graph released it, kept a day so a redelivered release can finish. */
  releasedVm: (vmId: string) => ({ pk: `VM#${vmId}`, sk: 'RELEASED' }),
  hostKeys: (vmId: string) => ({ pk: `VM#${vmId}`, sk: 'HOSTKEYS' }),
  vmConsole: (vmId: string) => ({ pk: `VM#${vmId}`, sk: 'CONSOLE' }),
  serviceAccount: (serviceAccountId: string) => ({ pk: `SA#${serviceAccountId}`, sk: 'SA' }),
  storagePool: (poolId: string) => ({ pk: `POOL#${poolId}`, sk: 'POOL' }),
  project: (projectId: string) => ({ pk: `PROJECT#${projectId}`, sk: 'PROJECT' }),
  image: (imageId: string) => ({ pk: `IMAGE#${imageId}`, sk: 'IMAGE' }),
  /** An image's content copied into another region than the one it was uploaded in. */
  imageCopy: (imageId: string, region: string) => ({ pk: `IMAGE#${imageId}`, sk: `COPY#${region}` }),
  disk: (diskId: string) => ({ pk: `DISK#${diskId}`, sk: 'DISK' }),
  shuffleJob: (jobId: string) => ({ pk: `SHUFFLE#${jobId}`, sk: 'JOB' }),
  /** What a worker's host reported of it: records sent (once closed) and records received. */
  shuffleWorker: (jobId: string, vmId: string) => ({ pk: `SHUFFLE#${jobId}`, sk: `WORKER#${vmId}` }),
  slot: (networkId: string, ip: string) => ({ pk: `NET#${networkId}`, sk: `SLOT#${ip}` }),
  /** How many of a network's addresses were ever handed out fresh, in order: the next one is the first never used. */
  addressCursor: (networkId: string) => ({ pk: `NET#${networkId}`, sk: 'CURSOR' }),
  /** An address a create reserved and gave back unused (it failed): free again, though no VM ever held it. */
  returnedAddress: (networkId: string, ip: string) => ({ pk: `NET#${networkId}`, sk: `RETURNED#${ip}` }),
  member: (networkId: string, hostId: string) => ({ pk: `NET#${networkId}`, sk: `MEMBER#${hostId}` }),
  /** What a tenant's create with an idempotency token made: the resource, and the request it was for. */
  clientToken: (tenantId: string, operation: string, token: string) => ({ pk: `TENANT#${tenantId}`, sk: `CLIENT_TOKEN#${operation}#${token}` }),
  /** A tenant's quota limits as operators set them (global: the same in every region). */
  quotaLimits: (tenantId: string) => ({ pk: `TENANT#${tenantId}`, sk: 'QUOTA' }),
  /** What a tenant holds in one region, counted in the same transactions as its creates and deletes. */
  quotaUsage: (tenantId: string, region: string) => ({ pk: `TENANT#${tenantId}`, sk: `USAGE#${region}` }),
  /** An API token an operator revoked, by its id: kept until the token would have expired. */
  revokedToken: (jti: string) => ({ pk: `REVOKED#${jti}`, sk: 'TOKEN' }),
  /** A tenant's rule that VMs of `sourceNetworkId` may connect to VMs of `networkId`. */
  allowedSource: (networkId: string, sourceNetworkId: string) => ({ pk: `NET#${networkId}`, sk: `ALLOW#${sourceNetworkId}` }),
};

/**
 * Five generic indexes. gsi1 lists hosts, storage pools, and a tenant's projects, networks, VMs,
 * disks and service accounts; gsi2 lists the VMs of one network, the networks one host is a
 * member of and the free (released or returned) addresses of one network; gsi3 the VMs on one
 * host; gsi4 everything a project owns (its graph's nodes); gsi5, whose sort key is a number, is
 * placement's: the hosts of one shard of a region by free capacity.
 */
export const indexes = {
  gsi1: 'gsi1',
  gsi2: 'gsi2',
  gsi3: 'gsi3',
  gsi4: 'gsi4',
  gsi5: 'gsi5',
};

/** The table's key and index attributes: storage layout, never part of what the API returns. */
export const tableKeyAttributes: ReadonlySet<string> = new Set(['pk', 'sk', ...Object.values(indexes).flatMap((index) => [`${index}pk`, `${index}sk`])]);

/** An item as read from the table, without its key and index attributes. */
export function withoutTableKeys<T extends object>(item: T): T {
  return Object.fromEntries(Object.entries(item).filter(([name]) => !tableKeyAttributes.has(name))) as T;
}

export const indexKeys = {
  allHosts: 'HOSTS',
  networksOfTenant: (tenantId: string) => `TENANT#${tenantId}#NETWORKS`,
  vmsOfTenant: (tenantId: string) => `TENANT#${tenantId}#VMS`,
  serviceAccountsOfTenant: (tenantId: string) => `TENANT#${tenantId}#SAS`,
  disksOfTenant: (tenantId: string) => `TENANT#${tenantId}#DISKS`,
  projectsOfTenant: (tenantId: string) => `TENANT#${tenantId}#PROJECTS`,
  imagesOfTenant: (tenantId: string) => `TENANT#${tenantId}#IMAGES`,
  nodesOfProject: (projectId: string) => `PROJECT#${projectId}#NODES`,
  allStoragePools: 'STORAGE_POOLS',
  vmsOnHost: (hostId: string) => `HOST#${hostId}#VMS`,
  vmsOfNetwork: (networkId: string) => `VMS#NET#${networkId}`,
  networksOfHost: (hostId: string) => `MEMBERSHIPS#HOST#${hostId}`,
  /** gsi2: a network's free addresses (released slots, returned addresses), in a random order. */
  freeAddresses: (networkId: string) => `FREE#NET#${networkId}`,
  /** gsi5: one shard of a region's hosts that run VMs, by free capacity (sort key: capacity - vmCount). */
  placementShard: (region: string, shard: number) => `PLACEMENT#${region}#${shard}`,
};
