import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { macOfInterface } from '../data-plane/anti-spoofing.ts';
import { vmInterfaceName } from '../data-plane/desired-state.ts';

const run = promisify(execFile);
const ip = (netns: string | undefined, args: string[]) => run('ip', netns ? ['-n', netns, ...args] : args);

/**
 * Makes the VM's tap in the host's namespace, named as the data plane expects (vmInterfaceName);
 * the data plane gives it the gateway address, its rule and its route, and QEMU opens it by name.
 * One that is there already (the VM's previous boot, or an earlier agent's) is kept as it is: it
 * keeps what the data plane programmed on it, which a new device would lose.
 */
export async function plugTap(netns: string | undefined, name: string): Promise<void> {
  const exists = await ip(netns, ['link', 'show', 'dev', name]).then(
    () => true,
    () => false,
  );
  if (!exists) await ip(netns, ['tuntap', 'add', 'dev', name, 'mode', 'tap']);
  await ip(netns, ['link', 'set', name, 'address', VM_GATEWAY_MAC, 'up']);
}

/**
 * The MAC of the host side of every VM's tap, on every host: the guest's gateway answers with it,
 * so a guest that moves live to another host finds its gateway where its ARP cache says (a tap's
 * own random MAC would differ, and the guest would send to a MAC nobody has until its entry went
 * stale). Locally administered, and never a VM's (theirs start 02:, see macOfVm).
 */
export const VM_GATEWAY_MAC = '0a:00:00:00:00:01';

export async function unplugTap(netns: string | undefined, name: string): Promise<void> {
  await ip(netns, ['link', 'del', name]).catch(() => {});
}

/**
 * A VM's MAC: locally administered (02:…), from its id, so it is the same on every host it runs
 * on, and the one its interface's anti-spoofing entry allows (data-plane/anti-spoofing.ts).
 */
export function macOfVm(vmId: string): string {
  return macOfInterface(vmInterfaceName(vmId));
}
