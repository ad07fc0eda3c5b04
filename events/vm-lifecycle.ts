import { z } from 'zod';
import { resourceId } from './identifiers.ts';

/**
 * What a VM is doing, as the API shows it. The control plane sets `provisioning` (placed, its host
 * not yet running it: waiting for its image's copy, or for the host to fetch and start it) and the
 * state a tenant's start or stop leads to, and shows a running VM `migrating` while it moves live
 * between hosts; everything else is what the VM's host agent saw.
 */
export const VmState = z.enum(['provisioning', 'starting', 'running', 'migrating', 'stopping', 'stopped', 'failed', 'unreachable']);
export type VmState = z.infer<typeof VmState>;

/**
 * What the control plane does with a VM whose host goes down: `wait` for the host to come back (its
 * VM reads `unreachable` meanwhile), or `restart` it once on another healthy host from its image,
 * as GCE's automatic restart. A VM with disks always waits: their data is on the dead host.
 */
export const OnHostFailure = z.enum(['wait', 'restart']);
export type OnHostFailure = z.infer<typeof OnHostFailure>;

/** A restart of a VM elsewhere after its host went down. */
export const HostFailureRecovery = z.strictObject({
  fromHostId: z.string(),
  toHostId: z.string(),
  at: z.iso.datetime(),
  /** What was known of the dead host: when it was last heard from. */
  reason: z.string(),
});
export type HostFailureRecovery = z.infer<typeof HostFailureRecovery>;

/** What a host agent reports of a VM it runs. */
export const ObservedVmState = VmState.exclude(['provisioning', 'migrating', 'unreachable']);
export type ObservedVmState = z.infer<typeof ObservedVmState>;

/** What the tenant asked for (`POST /vms/{id}/start|stop`); the host agent makes it so. */
export const PowerState = z.enum(['running', 'stopped']);
export type PowerState = z.infer<typeof PowerState>;

/**
 * What runs a host's VMs, as its agent registered it (`--runtime`): `qemu` boots real guests from
 * their images, `process` runs a placeholder process per VM (no guest: an image is not booted),
 * `none` runs no VMs (placement never puts one there). On a VM: what runs it.
 */
export const VmRuntimeKind = z.enum(['qemu', 'process', 'none']);
export type VmRuntimeKind = z.infer<typeof VmRuntimeKind>;

/** Whether placement may choose a host (`on`), or only a VM or a move that names it may go there (`off`). */
export const AutoPlacement = z.enum(['on', 'off']);
export type AutoPlacement = z.infer<typeof AutoPlacement>;

/** Where placement puts a network's VMs: over as many hosts as it can (`spread`), or onto hosts the network already runs on (`pack`). */
export const NetworkPlacement = z.enum(['spread', 'pack']);
export type NetworkPlacement = z.infer<typeof NetworkPlacement>;

/** How a `qemu` host runs its guests: hardware virtualization (KVM), or QEMU's emulator (TCG, several times slower). */
export const AcceleratorKind = z.enum(['kvm', 'tcg']);
export type AcceleratorKind = z.infer<typeof AcceleratorKind>;

/** The serial console's tail kept for `GET /vms/{id}/console` (EC2 keeps 64 KiB; a guest's boot and its last words fit in this). */
export const CONSOLE_OUTPUT_MAX_CHARS = 16 * 1024;

/**
 * Sizes a VM can have. Guests here are small (TCG on two cores): the catalogue starts where the
 * project's guest image boots reliably (below 80 MiB it fails silently).
 */
export const MACHINE_TYPES = {
  's1.nano': { memoryMiB: 96, vcpus: 1 },
  's1.micro': { memoryMiB: 128, vcpus: 1 },
  's1.small': { memoryMiB: 256, vcpus: 1 },
  's1.medium': { memoryMiB: 512, vcpus: 2 },
} as const;
export const MachineType = z.enum(Object.keys(MACHINE_TYPES) as [keyof typeof MACHINE_TYPES, ...(keyof typeof MACHINE_TYPES)[]]);
export type MachineType = z.infer<typeof MachineType>;
export const DEFAULT_MACHINE_TYPE: MachineType = 's1.nano';

/** `PUT /hosts/{hostId}/vms/{vmId}/state`: what the VM's host agent saw, and when. */
export const ReportVmStateRequest = z.strictObject({
  state: ObservedVmState,
  /** Why it failed or stopped, in words; a failure carries the console's telling lines. */
  reason: z.string().max(4096).optional(),
  /** When the agent saw it (ms since the epoch, the host's clock): a report older than the VM's last one is ignored. */
  observedAt: z.int().min(0),
  /** The serial console's tail, when it changed since the agent's last report. */
  console: z.string().max(CONSOLE_OUTPUT_MAX_CHARS).optional(),
  /** What runs the VM on the host (agents before this field did not send it). */
  runtime: VmRuntimeKind.optional(),
});
export type ReportVmStateRequest = z.infer<typeof ReportVmStateRequest>;

/** `GET /vms/{id}/console`: the serial console's tail, as EC2's GetConsoleOutput. */
export const VmConsoleOutput = z.strictObject({
  vmId: resourceId,
  /** The last characters the guest wrote to its serial console; empty before its host reported any. */
  output: z.string(),
  /** When its host last read it. */
  updatedAt: z.string().optional(),
});
export type VmConsoleOutput = z.infer<typeof VmConsoleOutput>;
