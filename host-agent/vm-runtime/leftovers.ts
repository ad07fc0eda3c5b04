import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';

/** Each VM's process id is kept in `<stateDir>/<vmId>/pid`, for the next agent to find. */
export const PID_FILE = 'pid';

/**
 * Kills the VM processes an earlier agent of this host left running (it was killed, or crashed)
 * and removes their folders: a guest nobody supervises holds its tap, memory and disks, and the new
 * agent boots its VMs afresh. A pid is killed only if its command line still names that VM (the
 * pid may have been reused). Returns the VMs it found.
 */
export function reclaimLeftovers(stateDir: string, isVmProcess: (cmdline: string, vmId: string) => boolean): string[] {
  if (!existsSync(stateDir)) return [];
  const found: string[] = [];
  for (const vmId of readdirSync(stateDir)) {
    const dir = path.join(stateDir, vmId);
    try {
      const pid = Number(readFileSync(path.join(dir, PID_FILE), 'utf8').trim());
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
      if (pid > 1 && isVmProcess(cmdline, vmId)) {
        // Its process group when it leads one (the process runtime's shell and its sleep), else the process.
        try {
          process.kill(-pid, 'SIGKILL');
        } catch {
          process.kill(pid, 'SIGKILL');
        }
        found.push(vmId);
      }
    } catch {
      // No pid file, or the process is gone: nothing runs.
    }
    rmSync(dir, { recursive: true, force: true });
  }
  return found;
}
