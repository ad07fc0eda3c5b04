import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { type Accelerator, chooseAccelerator } from './accelerator.ts';

/** Linux capability bits (linux/capability.h): taps are made with the first, `ip netns exec` needs the second. */
const CAP_NET_ADMIN = 12n;
const CAP_SYS_ADMIN = 21n;

/** Whether QEMU guests can run on this machine, checked once at the agent's start. */
export interface QemuCapability {
  /** What is missing, each in words that say what to do; empty: QEMU guests can run here. */
  missing: string[];
  /** QEMU's version (`10.0.2`), when it answered. */
  version?: string;
  /** KVM when usable, else TCG, and why (not a blocker: TCG runs guests, slower). */
  accelerator: Accelerator;
}

/** `QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-2)` → `10.0.2`; anything else → undefined. */
export function parseQemuVersion(output: string): string | undefined {
  return /^QEMU emulator version (\d+\.\d+(?:\.\d+)?)/m.exec(output)?.[1];
}

/** The effective capability set in /proc/<pid>/status (`CapEff:\t000001ffffffffff`), or undefined without one. */
export function effectiveCapabilities(status: string): bigint | undefined {
  const hex = /^CapEff:\s*([0-9a-fA-F]+)\s*$/m.exec(status)?.[1];
  return hex === undefined ? undefined : BigInt(`0x${hex}`);
}

const has = (capabilities: bigint, bit: bigint) => (capabilities & (1n << bit)) !== 0n;

export interface QemuProbes {
  /** Runs `<binary> --version`. */
  version: (binary: string) => { error?: Error; status: number | null; stdout: string; stderr: string };
  /** The agent's /proc/self/status. */
  procStatus: () => string;
  accelerator: () => Accelerator;
}

const machineProbes: QemuProbes = {
  version: (binary) => {
    const run = spawnSync(binary, ['--version'], { encoding: 'utf8', timeout: 10_000 });
    return { ...(run.error ? { error: run.error } : {}), status: run.status, stdout: run.stdout ?? '', stderr: run.stderr ?? '' };
  },
  procStatus: () => readFileSync('/proc/self/status', 'utf8'),
  accelerator: () => chooseAccelerator(),
};

/**
 * Can this agent run QEMU guests? QEMU must answer `--version` as QEMU; with a host namespace
 * (`netns`) the agent must hold CAP_NET_ADMIN and CAP_SYS_ADMIN (root) to make each guest's tap
 * there and start QEMU in it. KVM or TCG is said, not required.
 */
export function checkQemu(options: { binary?: string; netns?: string | undefined }, probes: QemuProbes = machineProbes): QemuCapability {
  const binary = options.binary ?? 'qemu-system-x86_64';
  const missing: string[] = [];
  const run = probes.version(binary);
  let version: string | undefined;
  if (run.error) {
    const notFound = (run.error as NodeJS.ErrnoException).code === 'ENOENT';
    missing.push(
      notFound
        ? `${binary} is not installed (Debian: apt-get install qemu-system-x86; or give its path with --qemu-binary)`
        : `${binary} could not be run (${run.error.message})`,
    );
  } else if (run.status !== 0) {
    missing.push(`\`${binary} --version\` failed (exit ${run.status}${run.stderr.trim() ? `: ${run.stderr.trim().split('\n')[0]}` : ''})`);
  } else {
    version = parseQemuVersion(run.stdout);
    if (!version) missing.push(`\`${binary} --version\` did not answer as QEMU does (${JSON.stringify(run.stdout.trim().split('\n')[0] ?? '')})`);
  }
  if (options.netns) {
    let capabilities: bigint | undefined;
    try {
      capabilities = effectiveCapabilities(probes.procStatus());
    } catch {
      capabilities = undefined;
    }
    const lacking = [
      ...(capabilities === undefined || !has(capabilities, CAP_NET_ADMIN) ? ['CAP_NET_ADMIN'] : []),
      ...(capabilities === undefined || !has(capabilities, CAP_SYS_ADMIN) ? ['CAP_SYS_ADMIN'] : []),
    ];
    if (lacking.length > 0) {
      missing.push(
        `not root: guests' taps in --netns ${options.netns} need ${lacking.join(' and ')} (run the agent as root, or without --netns: guests then get no NIC)`,
      );
    }
  }
  return { missing, ...(version ? { version } : {}), accelerator: probes.accelerator() };
}
