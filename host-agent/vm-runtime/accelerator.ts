import { accessSync, constants, existsSync, readFileSync } from 'node:fs';

export interface Accelerator {
  /** What QEMU gets: `-accel kvm` or `-accel tcg,tb-size=16`. */
  kind: 'kvm' | 'tcg';
  /** Why, in words for the agent's start-up line and /status. */
  reason: string;
}

/**
 * KVM when this machine can run an ordinary guest kernel with it, else TCG (QEMU's emulator). A
 * /dev/kvm is not enough: a PVM-backed one (kvm_pvm loaded, no vmx/svm) runs only kernels built as
 * PVM guests, and a stock kernel hangs under it.
 */
export function chooseAccelerator(paths = { kvm: '/dev/kvm', cpuinfo: '/proc/cpuinfo', pvmModule: '/sys/module/kvm_pvm' }): Accelerator {
  if (process.env.STRATOPLANE_ACCEL === 'tcg') return { kind: 'tcg', reason: 'STRATOPLANE_ACCEL=tcg' };
  if (!existsSync(paths.kvm)) return { kind: 'tcg', reason: `no ${paths.kvm}` };
  try {
    accessSync(paths.kvm, constants.R_OK | constants.W_OK);
  } catch {
    return { kind: 'tcg', reason: `${paths.kvm} is not readable and writable by this agent` };
  }
  if (existsSync(paths.pvmModule)) return { kind: 'tcg', reason: `${paths.kvm} is PVM-backed (kvm_pvm): it runs only PVM-built guest kernels` };
  const flags = /^flags\s*:(.*)$/m.exec(readFileSync(paths.cpuinfo, 'utf8'))?.[1] ?? '';
  if (!/\b(vmx|svm)\b/.test(flags)) return { kind: 'tcg', reason: 'the CPU shows no vmx/svm (hardware virtualization)' };
  return { kind: 'kvm', reason: `${paths.kvm} with hardware virtualization` };
}

export function accelArgs(accelerator: Accelerator): string[] {
  // A small translation cache keeps a TCG guest's QEMU near 150 MB instead of 1 GB.
  return accelerator.kind === 'kvm' ? ['-accel', 'kvm', '-cpu', 'host'] : ['-accel', 'tcg,tb-size=16'];
}
