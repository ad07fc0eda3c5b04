import { z } from 'zod';
import {
  AcknowledgeEndpointsRequest,
  AttachServiceAccountRequest,
  CreateNetworkRequest,
  CreateServiceAccountRequest,
  CreateVmRequest,
  IssueHostCredentialsRequest,
  ListImagesQuery,
  ListQuery,
  ListVmsQuery,
  MigrateVmRequest,
  DrainHostRequest,
  PublishHostKeysRequest,
  RegisterHostRequest,
  RequestConnectionRequest,
  RevokeTokenRequest,
} from './api.ts';
import { AttachDiskRequest, CreateDiskRequest, DISK_LIMITS, ModifyDiskRequest, RegisterStoragePoolRequest } from './disks.ts';
import { resourceId } from './identifiers.ts';
import { CompleteImageUploadRequest, CreateImageRequest } from './images.ts';
import { CreateProjectRequest } from './projects.ts';
import * as responses from './responses.ts';
import { DEFAULT_QUOTAS, GetQuotasQuery, PutQuotaRequest } from './quotas.ts';
import { CheckShuffleHandoffRequest, CreateShuffleJobRequest, ShuffleHandoffCheck, ShuffleHandoffTicket, ShuffleWorkerReport } from './shuffle.ts';
import type { Scope } from './tokens.ts';
import { EgressPolicy, PutVmAttributesRequest } from './vm-config.ts';
import { ReportVmStateRequest, VmConsoleOutput } from './vm-lifecycle.ts';
import { ReportMigrationRequest } from './migrations.ts';

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

/**
 * One route of the API: what it takes, who may call it and what it answers. Handlers validate
 * with these schemas, the CDK app makes a method per operation, and the OpenAPI description is
 * generated from them: one source of truth.
 */
export interface Operation {
  operationId: string;
  method: HttpMethod;
  /** The URL path template under the stage, `{name}` for each path parameter. */
  path: string;
  summary: string;
  /** Rules of the operation a schema cannot state (they depend on stored state, or on numbers in relation), in words. */
  description?: string;
  /** The caller must hold at least one of these scopes. */
  scopes: readonly Scope[];
  /** The path parameters, every one an id: derived from `path`. */
  params: z.ZodType<Record<string, string>>;
  body?: z.ZodType;
  /** The body may be left out (read as `{}`): for options an operation works without. */
  bodyOptional?: boolean;
  query?: z.ZodType;
  /** Success answers by status code: what each means, and the schema of its body (none for 204). */
  responses: Readonly<Record<number, { description: string; body?: z.ZodType }>>;
}

type OperationSpec = Omit<Operation, 'operationId' | 'method' | 'path' | 'params'>;

/** `'GET /vms/{vmId}/host-keys'` → `'vmId'`. */
type ParamNames<Route extends string> = Route extends `${string}{${infer Name}}${infer Rest}` ? Name | ParamNames<Rest> : never;

const pathParameterNames = (path: string) => [...path.matchAll(/\{(\w+)\}/g)].map((match) => match[1]!);

function operation<Route extends `${HttpMethod} /${string}`, Spec extends OperationSpec>(route: Route, spec: Spec) {
  const [method, path] = route.split(' ') as [HttpMethod, string];
  const params = z.strictObject(Object.fromEntries(pathParameterNames(path).map((name) => [name, resourceId]))) as unknown as z.ZodType<
    Record<ParamNames<Route>, string>
  >;
  return { method, path, params, ...spec };
}

const tenantRead = ['tenant:read'] as const;
const tenantWrite = ['tenant:write'] as const;
const anyCaller = ['tenant:read', 'tenant:write', 'host', 'operator'] as const;
const quotaDefaults = `${DEFAULT_QUOTAS.vms} VMs, ${DEFAULT_QUOTAS.disks} disks, ${DEFAULT_QUOTAS.diskGiB} GiB of disks, ${DEFAULT_QUOTAS.networks} networks per region`;

const diskRules = `IOPS and throughput above the baseline (${DISK_LIMITS.baselineIops} IOPS, ${DISK_LIMITS.baselineThroughputMiBps} MiB/s) are tied by two rules, refused with 400 naming the rule: iops-per-gib, at most ${DISK_LIMITS.maxIopsPerGiB} IOPS per GiB of size; throughput-per-iops, at most ${DISK_LIMITS.maxThroughputPerIops} MiB/s per IOPS.`;

const specs = {
  getApiDescription: operation('GET /openapi.json', {
    summary: 'This description of the API (OpenAPI 3.1)',
    scopes: anyCaller,
    responses: { 200: { description: 'the OpenAPI document', body: responses.ApiDescription } },
  }),

  registerHost: operation('POST /hosts', {
    summary: 'Register a host (again with the same address: no change)',
    scopes: ['operator', 'host'],
    body: RegisterHostRequest,
    responses: { 200: { description: 'already registered', body: responses.Host }, 201: { description: 'registered', body: responses.Host } },
  }),
  listHosts: operation('GET /hosts', {
    summary: 'List hosts',
    scopes: ['operator'],
    responses: { 200: { description: 'the hosts', body: responses.HostList } },
  }),
  getHost: operation('GET /hosts/{hostId}', {
    summary: 'A host, with its health',
    scopes: ['operator', 'host'],
    responses: { 200: { description: 'the host', body: responses.Host } },
  }),
  sendHeartbeat: operation('PUT /hosts/{hostId}/heartbeat', {
    summary: "The host's agent says it is alive (every few seconds)",
    description: 'Health is measured from when heartbeats arrive: a host silent for 12 s is suspect, for 20 s down.',
    scopes: ['host'],
    responses: { 204: { description: 'recorded' } },
  }),
  cordonHost: operation('POST /hosts/{hostId}/cordon', {
    summary: 'Keep new VMs off a host (placement, migrations to it); what runs there stays',
    scopes: ['operator'],
    responses: { 200: { description: 'the host, cordoned', body: responses.Host } },
  }),
  drainHost: operation('POST /hosts/{hostId}/drain', {
    summary: 'Cordon a host and move every VM off it (live where both hosts can), reporting progress in the host',
    description:
      'Moves start at once, to the host placement picks for each VM or to the one named (targetHostId, kept for the whole drain); a VM that cannot move yet is named in drain.stuck with why, and tried again every minute. Draining again replaces the target (or its absence). Uncordoning ends the drain.',
    scopes: ['operator'],
    body: DrainHostRequest,
    bodyOptional: true,
    responses: { 202: { description: 'the host, draining', body: responses.Host } },
  }),
  uncordonHost: operation('POST /hosts/{hostId}/uncordon', {
    summary: 'Let placement use a cordoned host again (ends a drain)',
    scopes: ['operator'],
    responses: { 200: { description: 'the host', body: responses.Host } },
  }),
  getForwardingTable: operation('GET /hosts/{hostId}/forwarding-table', {
    summary: 'Every network the host is a member of, whole',
    scopes: ['host', 'operator'],
    responses: { 200: { description: 'the forwarding table', body: responses.ForwardingTable } },
  }),
  acknowledgeEndpoints: operation('POST /hosts/{hostId}/endpoint-acks', {
    summary: 'Endpoint versions the host agent has applied (its latest per VM)',
    scopes: ['host'],
    body: AcknowledgeEndpointsRequest,
    responses: { 204: { description: 'recorded' } },
  }),
  publishHostKeys: operation('PUT /hosts/{hostId}/vms/{vmId}/host-keys', {
    summary: "Publish a VM's SSH host keys (only its current host)",
    scopes: ['host'],
    body: PublishHostKeysRequest,
    responses: { 200: { description: 'published, with an attestation', body: responses.HostKeys } },
  }),
  reportVmState: operation('PUT /hosts/{hostId}/vms/{vmId}/state', {
    summary: "Report what a VM's host sees of it: its state, why, and its console's tail (only its current host)",
    description: 'A report older (by observedAt) than the one the VM holds is ignored (accepted: false); a host the VM does not run on gets 409.',
    scopes: ['host'],
    body: ReportVmStateRequest,
    responses: { 200: { description: 'recorded, or ignored as older', body: responses.VmStateReportAnswer } },
  }),
  reportMigration: operation('PUT /hosts/{hostId}/vms/{vmId}/migration', {
    summary: "Report what a host at one end of a VM's live migration saw (the destination: listening, resumed; the source: converged, cleaned; either: failed)",
    description:
      "resumed commits the VM's new endpoint at once (the destination's fast path); failed aborts a migration not yet cut over. A report for another migration, from a host at neither end, or out of phase gets 409; the same report again is answered as the first.",
    scopes: ['host'],
    body: ReportMigrationRequest,
    responses: { 200: { description: 'the migration after the report', body: responses.MigrationReportAnswer } },
  }),
  getMigrationConvergence: operation('GET /hosts/{hostId}/vms/{vmId}/migration', {
    summary: "For a migration's source: how far the VM's new endpoint has spread among the hosts that need it",
    scopes: ['host'],
    responses: { 200: { description: 'the convergence', body: responses.MigrationConvergence } },
  }),
  issueHostCredentials: operation('POST /hosts/{hostId}/service-account-credentials', {
    summary: 'Long-term service-account credentials bound to the agent key',
    scopes: ['host'],
    body: IssueHostCredentialsRequest,
    responses: { 200: { description: 'one credential per VM with an attached account, naming that VM alone', body: responses.HostCredentials } },
  }),
  getHostVmConfigs: operation('GET /hosts/{hostId}/vm-configs', {
    summary: "How to launch the host's VMs, their egress policies, attributes and wrapped pair secrets",
    scopes: ['host'],
    responses: { 200: { description: 'the VM configurations', body: responses.HostVmConfigs } },
  }),
  reportShuffleWorker: operation('PUT /hosts/{hostId}/shuffle-jobs/{jobId}/workers/{vmId}', {
    summary: "What a worker's host reports of it (absolute numbers)",
    scopes: ['host'],
    description:
      "Only the host holding the worker's spill reports it (the worker may have left it); the host the worker runs on now takes it over with `handoffFrom`, holding a ticket issued to it (409 otherwise).",
    body: ShuffleWorkerReport,
    responses: { 200: { description: 'the job as it stands', body: responses.ShuffleJob } },
  }),
  issueShuffleHandoff: operation('POST /hosts/{hostId}/shuffle-jobs/{jobId}/workers/{vmId}/handoff', {
    summary: "A ticket to fetch a worker's spill from the host holding it",
    description:
      'For the host the worker runs on now, when another host holds its spilled partitions (409 when none does, or the holder has not said where it serves them yet). Asking again replaces the ticket.',
    scopes: ['host'],
    responses: { 200: { description: 'the holder, where it serves the spill, and the ticket (shown once)', body: ShuffleHandoffTicket } },
  }),
  checkShuffleHandoff: operation('POST /hosts/{hostId}/shuffle-jobs/{jobId}/workers/{vmId}/handoff/check', {
    summary: 'What a holding host asks of a hand-off ticket presented to it',
    description:
      "Answers only the host that holds (or held, until the hand-off completed) the worker's spill, and only for the ticket issued to the host the worker runs on now: 403 otherwise.",
    scopes: ['host'],
    body: CheckShuffleHandoffRequest,
    responses: { 200: { description: 'the ticket is good: pending (serve the spill) or complete (delete it)', body: ShuffleHandoffCheck } },
  }),

  createNetwork: operation('POST /networks', {
    summary: 'Create a network',
    scopes: tenantWrite,
    body: CreateNetworkRequest,
    responses: { 201: { description: 'created', body: responses.Network } },
  }),
  listNetworks: operation('GET /networks', {
    summary: 'List networks',
    scopes: tenantRead,
    query: ListQuery,
    responses: { 200: { description: 'a page of networks', body: responses.NetworkList } },
  }),
  getNetwork: operation('GET /networks/{networkId}', {
    summary: 'Show a network',
    scopes: tenantRead,
    responses: { 200: { description: 'the network', body: responses.Network } },
  }),
  deleteNetwork: operation('DELETE /networks/{networkId}', {
    summary: 'Delete a network no VM uses',
    scopes: tenantWrite,
    responses: { 204: { description: 'deleted' } },
  }),
  allowSource: operation('PUT /networks/{networkId}/allowed-sources/{sourceNetworkId}', {
    summary: 'Let VMs of the source network connect to this one',
    scopes: tenantWrite,
    responses: { 200: { description: 'allowed', body: responses.AllowedSource } },
  }),
  disallowSource: operation('DELETE /networks/{networkId}/allowed-sources/{sourceNetworkId}', {
    summary: 'Take that permission back',
    scopes: tenantWrite,
    responses: { 204: { description: 'no longer allowed' } },
  }),
  listAllowedSources: operation('GET /networks/{networkId}/allowed-sources', {
    summary: 'Networks allowed to connect to this one',
    scopes: tenantRead,
    responses: { 200: { description: 'the allowed sources', body: responses.AllowedSourceList } },
  }),

  createVm: operation('POST /vms', {
    summary:
      'Create a VM (pending while its image is copied from another region); placement picks its host, operators may name one (hostId) for a tenant (tenantId)',
    scopes: [...tenantWrite, 'operator'],
    body: CreateVmRequest,
    responses: { 201: { description: 'created', body: responses.Vm } },
  }),
  listVms: operation('GET /vms', {
    summary: "List VMs: a tenant's own, or (operators) every tenant's on one host (hostId)",
    scopes: [...tenantRead, 'operator'],
    query: ListVmsQuery,
    responses: { 200: { description: 'a page of VMs', body: responses.VmList } },
  }),
  getVm: operation('GET /vms/{vmId}', {
    summary: "Show a VM (operators: any tenant's)",
    scopes: [...tenantRead, 'operator'],
    responses: { 200: { description: 'the VM', body: responses.Vm } },
  }),
  migrateVm: operation('POST /vms/{vmId}/migrate', {
    summary: 'Move a VM to another host, which placement picks (operators may name it: targetHostId); it keeps its address',
    description:
      'A running QEMU guest moves live: the VM is answered `migrating` with its migration (phase preparing), and GET /vms/{id} follows it to its end (lastMigration). Any other VM (a placeholder process, a stopped or failed guest) moves at once. 409 while the VM migrates, when no other host has room, or when the named host cannot run it.',
    scopes: [...tenantWrite, 'operator'],
    body: MigrateVmRequest,
    responses: { 200: { description: 'moving (live) or moved', body: responses.Vm } },
  }),
  startVm: operation('POST /vms/{vmId}/start', {
    summary: 'Start a stopped or failed VM: its host boots it again (a running VM is left as it is)',
    scopes: tenantWrite,
    responses: { 200: { description: 'the VM: provisioning until its host boots it', body: responses.Vm } },
  }),
  stopVm: operation('POST /vms/{vmId}/stop', {
    summary: 'Stop a VM: its guest is asked to power off (ACPI), then made to; its address, disks and keys stay (a stopped VM is left as it is)',
    scopes: tenantWrite,
    responses: { 200: { description: 'the VM: stopping until its host has stopped it', body: responses.Vm } },
  }),
  rebootVm: operation('POST /vms/{vmId}/reboot', {
    summary: 'Reboot a running VM: its host stops its guest and boots it again',
    description: 'Only a running VM can be rebooted (409 otherwise: start a stopped or failed VM instead).',
    scopes: tenantWrite,
    responses: { 200: { description: 'the VM, still running until its host stops it for the reboot', body: responses.Vm } },
  }),
  getVmConsoleOutput: operation('GET /vms/{vmId}/console', {
    summary: "The tail of a VM's serial console, as its host last sent it (as EC2 GetConsoleOutput)",
    scopes: tenantRead,
    responses: { 200: { description: 'the console output', body: VmConsoleOutput } },
  }),
  getVmConvergence: operation('GET /vms/{vmId}/convergence', {
    summary: "Which hosts' agents hold the VM's current tunnel endpoint (a migration's progress); operators: any tenant's VM",
    scopes: [...tenantRead, 'operator'],
    responses: { 200: { description: 'the convergence', body: responses.VmConvergence } },
  }),
  deleteVm: operation('DELETE /vms/{vmId}', {
    summary: 'Delete a VM without disks attached',
    scopes: tenantWrite,
    responses: { 204: { description: 'deleted' } },
  }),
  getHostKeys: operation('GET /vms/{vmId}/host-keys', {
    summary: "A VM's SSH host keys: type, fingerprint, known_hosts line, attestation",
    scopes: tenantRead,
    responses: { 200: { description: 'the host keys', body: responses.HostKeys } },
  }),
  attachServiceAccount: operation('PUT /vms/{vmId}/service-account', {
    summary: 'Attach a service account to a VM',
    scopes: tenantWrite,
    body: AttachServiceAccountRequest,
    responses: { 200: { description: 'attached', body: responses.Vm } },
  }),
  detachServiceAccount: operation('DELETE /vms/{vmId}/service-account', {
    summary: "Detach the VM's service account",
    scopes: tenantWrite,
    responses: { 200: { description: 'detached', body: responses.Vm } },
  }),
  requestConnection: operation('POST /vms/{vmId}/connections', {
    summary: 'A network-pair token for a connection to another VM',
    description:
      "403 when the pair is not allowed (another network that is not an allowed source of the destination's) or is revoked; 409 when the two VMs' networks are different and their address ranges overlap (no route could tell them apart).",
    scopes: ['tenant:write', 'host'],
    body: RequestConnectionRequest,
    responses: { 200: { description: "the destination host's address and a token", body: responses.Connection } },
  }),
  revokePair: operation('PUT /vms/{vmId}/pair-revocations/{sourceVmId}', {
    summary: "Revoke the network pair from the source VM to this VM (operators: any tenant's)",
    description:
      "From then on no token is minted for the pair (403) and the destination's host refuses its tokens already minted, as soon as its agent hears of it (seconds). Revoking a revoked pair changes nothing. The source must be a VM of the same tenant.",
    scopes: [...tenantWrite, 'operator'],
    responses: { 200: { description: 'revoked', body: responses.PairRevocation } },
  }),
  liftPairRevocation: operation('DELETE /vms/{vmId}/pair-revocations/{sourceVmId}', {
    summary: "Lift that revocation: new tokens may be minted for the pair (operators: any tenant's)",
    description: 'Tokens issued before the revocation stay refused until they expire. 404 when the pair is not revoked.',
    scopes: [...tenantWrite, 'operator'],
    responses: { 204: { description: 'no longer revoked' } },
  }),
  listPairRevocations: operation('GET /vms/{vmId}/pair-revocations', {
    summary: "The revoked network pairs to this VM (operators: any tenant's)",
    scopes: [...tenantRead, 'operator'],
    responses: { 200: { description: 'the revoked pairs', body: responses.PairRevocationList } },
  }),
  putEgressPolicy: operation('PUT /vms/{vmId}/egress-policy', {
    summary: "What the VM's outbound proxy lets out",
    scopes: tenantWrite,
    body: EgressPolicy,
    responses: { 200: { description: 'the policy', body: responses.Vm } },
  }),
  putVmAttributes: operation('PUT /vms/{vmId}/attributes', {
    summary: "The VM's custom metadata (replaces the set)",
    scopes: tenantWrite,
    body: PutVmAttributesRequest,
    responses: { 200: { description: 'the attributes', body: responses.Vm } },
  }),

  createServiceAccount: operation('POST /service-accounts', {
    summary: 'Create a service account',
    scopes: tenantWrite,
    body: CreateServiceAccountRequest,
    responses: { 201: { description: 'created', body: responses.ServiceAccount } },
  }),
  listServiceAccounts: operation('GET /service-accounts', {
    summary: 'List service accounts',
    scopes: tenantRead,
    query: ListQuery,
    responses: { 200: { description: 'a page of service accounts', body: responses.ServiceAccountList } },
  }),
  getServiceAccount: operation('GET /service-accounts/{serviceAccountId}', {
    summary: 'Show a service account',
    scopes: tenantRead,
    responses: { 200: { description: 'the service account', body: responses.ServiceAccount } },
  }),
  deleteServiceAccount: operation('DELETE /service-accounts/{serviceAccountId}', {
    summary: 'Delete a service account no VM uses',
    scopes: tenantWrite,
    responses: { 204: { description: 'deleted' } },
  }),

  createShuffleJob: operation('POST /shuffle-jobs', {
    summary: 'Create a shuffle job over worker VMs',
    description: 'Each worker VM once (a repeated id is refused, 400); every worker must be a running VM of the tenant (else 409).',
    scopes: tenantWrite,
    body: CreateShuffleJobRequest,
    responses: { 201: { description: 'created', body: responses.ShuffleJob } },
  }),
  getShuffleJob: operation('GET /shuffle-jobs/{jobId}', {
    summary: 'Counts in and out per worker; complete when they match',
    scopes: tenantRead,
    responses: { 200: { description: 'the job', body: responses.ShuffleJob } },
  }),
  deleteShuffleJob: operation('DELETE /shuffle-jobs/{jobId}', {
    summary: 'Delete a shuffle job and its queues',
    scopes: tenantWrite,
    responses: { 204: { description: 'deleted' } },
  }),

  createProject: operation('POST /projects', {
    summary: 'Create a project',
    scopes: tenantWrite,
    body: CreateProjectRequest,
    responses: { 201: { description: 'created', body: responses.Project } },
  }),
  listProjects: operation('GET /projects', {
    summary: 'List projects',
    scopes: tenantRead,
    query: ListQuery,
    responses: { 200: { description: 'a page of projects', body: responses.ProjectList } },
  }),
  getProject: operation('GET /projects/{projectId}', {
    summary: 'Show a project',
    scopes: tenantRead,
    responses: { 200: { description: 'the project', body: responses.Project } },
  }),
  getProjectGraph: operation('GET /projects/{projectId}/graph', {
    summary: "The project's nodes, with owns and uses edges",
    scopes: tenantRead,
    responses: { 200: { description: 'the graph', body: responses.ProjectGraph } },
  }),
  deleteProject: operation('DELETE /projects/{projectId}', {
    summary: 'Delete a project and release everything beneath it',
    scopes: tenantWrite,
    responses: { 202: { description: 'deleting; the release goes on in the background', body: responses.Project } },
  }),

  createImage: operation('POST /images', {
    summary: 'Create an image and get one presigned PUT URL per part (operators: public images)',
    scopes: [...tenantWrite, 'operator'],
    body: CreateImageRequest,
    responses: { 201: { description: 'created, with its upload', body: responses.CreatedImage } },
  }),
  listImages: operation('GET /images', {
    summary: 'List images: your own, or the public ones (owner=public)',
    scopes: [...tenantRead, 'operator'],
    query: ListImagesQuery,
    responses: { 200: { description: 'a page of images', body: responses.ImageList } },
  }),
  getImage: operation('GET /images/{imageId}', {
    summary: "Show an image and its copies in other regions: the tenant's own, or a public one",
    scopes: [...tenantRead, 'operator'],
    responses: { 200: { description: 'the image', body: responses.ImageWithCopies } },
  }),
  completeImageUpload: operation('POST /images/{imageId}/complete', {
    summary: 'Complete the upload; the content is then verified',
    scopes: [...tenantWrite, 'operator'],
    body: CompleteImageUploadRequest,
    responses: { 202: { description: 'verifying', body: responses.Image } },
  }),

  revokeToken: operation('POST /token-revocations', {
    summary: 'Revoke an API token (operators): refused within a minute, until it expires',
    scopes: ['operator'],
    body: RevokeTokenRequest,
    responses: { 200: { description: 'already revoked', body: responses.TokenRevocation }, 201: { description: 'revoked', body: responses.TokenRevocation } },
  }),
  registerStoragePool: operation('POST /storage-pools', {
    summary: 'Register a storage pool (again with the same capacities: no change)',
    scopes: ['operator'],
    body: RegisterStoragePoolRequest,
    responses: { 200: { description: 'already registered', body: responses.StoragePool }, 201: { description: 'registered', body: responses.StoragePool } },
  }),
  listStoragePools: operation('GET /storage-pools', {
    summary: 'Storage pools and what is free of each',
    scopes: ['operator'],
    responses: { 200: { description: 'the pools', body: responses.StoragePoolList } },
  }),

  createDisk: operation('POST /disks', {
    summary:
      'Create a disk with size, IOPS and throughput chosen independently; placement picks its pool, operators may name one (poolId) for a tenant (tenantId)',
    description: diskRules,
    scopes: [...tenantWrite, 'operator'],
    body: CreateDiskRequest,
    responses: { 201: { description: 'created', body: responses.Disk } },
  }),
  listDisks: operation('GET /disks', {
    summary: 'List disks',
    scopes: tenantRead,
    query: ListQuery,
    responses: { 200: { description: 'a page of disks', body: responses.DiskList } },
  }),
  getDisk: operation('GET /disks/{diskId}', {
    summary: 'Show a disk',
    scopes: tenantRead,
    responses: { 200: { description: 'the disk', body: responses.Disk } },
  }),
  modifyDisk: operation('PATCH /disks/{diskId}', {
    summary: 'Change size, IOPS or throughput, any one independently',
    description: `At least one field. The size only grows (rule size-grows-only). ${diskRules} They are checked on the disk as it would be after the change.`,
    scopes: tenantWrite,
    body: ModifyDiskRequest,
    responses: { 200: { description: 'changed', body: responses.Disk } },
  }),
  deleteDisk: operation('DELETE /disks/{diskId}', { summary: 'Delete a detached disk', scopes: tenantWrite, responses: { 204: { description: 'deleted' } } }),
  attachDisk: operation('POST /disks/{diskId}/attach', {
    summary: 'Attach a disk to a VM',
    scopes: tenantWrite,
    body: AttachDiskRequest,
    responses: { 200: { description: 'attached', body: responses.Disk } },
  }),
  detachDisk: operation('POST /disks/{diskId}/detach', {
    summary: 'Detach a disk',
    scopes: tenantWrite,
    responses: { 200: { description: 'detached', body: responses.Disk } },
  }),

  getQuotas: operation('GET /quotas', {
    summary: `A tenant's quotas in this region: each limit, what it holds and who set the limit; a tenant its own, operators any tenant's (tenantId). Unset limits are defaults: ${quotaDefaults}`,
    scopes: [...tenantRead, 'operator'],
    query: GetQuotasQuery,
    responses: { 200: { description: 'the quotas', body: responses.Quotas } },
  }),
  putQuota: operation('PUT /quotas/{tenantId}', {
    summary: `Set a tenant's quota limits (operators; the whole set: one left out goes back to its default, ${quotaDefaults}). They apply in each region; a limit below what the tenant holds refuses only new creates`,
    scopes: ['operator'],
    body: PutQuotaRequest,
    responses: { 200: { description: 'the quotas now', body: responses.Quotas } },
  }),
};

export type OperationId = keyof typeof specs;

export const operations = Object.fromEntries(Object.entries(specs).map(([operationId, spec]) => [operationId, { operationId, ...spec }])) as {
  [Id in OperationId]: (typeof specs)[Id] & { operationId: Id };
};

/** Answers any operation may give besides its own: the message names the field, the rule or what to do. */
export const errorStatuses = {
  400: ['BadRequest', 'the request is malformed; the message names the field and the rule'],
  401: ['Unauthorized', 'missing, malformed, expired or forged bearer token'],
  403: [
    'Forbidden',
    "the token's scope does not allow this route, or a create would pass one of the tenant's quotas (the message names it: quota exceeded: vms 50 of 50; GET /quotas)",
  ],
  404: ['NotFound', "no such resource (another tenant's resource looks the same)"],
  409: ['Conflict', 'conflicts with the current state (in use, full, in another region); the message says what to do'],
  431: [
    'RequestHeaderFieldsTooLarge',
    'the request line and headers (the URL with its query, the token) are too large: refused before any function runs, without a body',
    { body: false },
  ],
  500: ['InternalError', 'internal error; nothing more is said'],
  503: [
    'ServiceUnavailable',
    'a service the control plane depends on did not answer, or the resource is contended; retry after the Retry-After seconds (creates with the same clientToken)',
  ],
} as const;

/** What an operation that takes a body may also answer: the body's Content-Type is not JSON. */
export const bodyErrorStatuses = {
  415: ['UnsupportedMediaType', 'the body is not declared as JSON; send it with Content-Type: application/json'],
} as const;

/** Every status code an operation is described as answering with. */
export const documentedStatuses = (operation: Operation): number[] =>
  [...Object.keys(operation.responses), ...Object.keys(errorStatuses), ...(operation.body ? Object.keys(bodyErrorStatuses) : [])].map(Number);

/** The operation a request is for, by method and concrete path (`/vms/vm-1`), if any. */
export function operationFor(method: string, path: string): Operation | undefined {
  const segments = path.split('?')[0]!.split('/').filter(Boolean);
  return Object.values<Operation>(operations).find((candidate) => {
    if (candidate.method !== method) return false;
    const template = candidate.path.split('/').filter(Boolean);
    return template.length === segments.length && template.every((part, index) => part.startsWith('{') || part === segments[index]);
  });
}
