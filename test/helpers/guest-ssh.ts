import { execFile, spawn } from 'node:child_process';
import { appendFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { expect } from 'vitest';
import { eventually } from './agents.ts';

const run = promisify(execFile);

/** Asks the API as the guest's tenant: the console and the published host keys. */
type AsTenant = (method: 'GET', path: string) => Promise<{ status: number; body: any }>;

/**
 * Logs into real guests as root from a lab VM's namespace (a VM of the guests' network), with a
 * key of the test's own and, as known hosts, only the keys each guest published through its
 * metadata server: the SSH server must prove it holds them. One master connection per guest, since
 * each handshake costs a TCG guest about a second.
 */
export class GuestSsh {
  private readonly options: string[];
  /** Each connected guest's address: the namespace its logins start in. */
  private readonly via = new Map<string, string>();

  private constructor(
    private readonly dir: string,
    /** The `ssh-keys` attribute that authorises the test's key for root. */
    readonly sshKeys: string,
  ) {
    this.options = [
      ...['-i', path.join(dir, 'id'), '-o', `UserKnownHostsFile=${path.join(dir, 'known_hosts')}`, '-o', 'StrictHostKeyChecking=yes'],
      ...['-o', 'BatchMode=yes', '-o', 'ConnectTimeout=20', '-o', 'ServerAliveInterval=5', '-o', `ControlPath=${path.join(dir, 'control-%C')}`],
    ];
  }

  /** A new key, for guests made with `sshKeys` among their attributes. */
  static async create(): Promise<GuestSsh> {
    const dir = mkdtempSync(path.join(tmpdir(), 'guest-ssh-'));
    await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', path.join(dir, 'id')]);
    return new GuestSsh(dir, `root:${readFileSync(path.join(dir, 'id.pub'), 'utf8').trim()}`);
  }

  /** Waits for the guest to authorise the key and publish its host keys, and trusts those. */
  async trust(vm: { vmId: string }, asTenant: AsTenant, timeoutMs = 150_000): Promise<void> {
    let lines: string[] = [];
    await eventually(
      async () => {
        const { body: console } = await asTenant('GET', `/vms/${vm.vmId}/console`);
        expect(console.output).toContain('stratoplane-guest: ssh: 1 key(s) authorized for root');
        const { body } = await asTenant('GET', `/vms/${vm.vmId}/host-keys`);
        expect(body.keys).toHaveLength(2);
        lines = body.keys.map((published: { knownHostsLine: string }) => published.knownHostsLine);
      },
      timeoutMs,
      500,
    );
    appendFileSync(path.join(this.dir, 'known_hosts'), `${lines.join('\n')}\n`);
  }

  /** Trusts the guest (see trust), and logs in from the namespace `from`: the master connection every later command goes through. */
  async connect(vm: { vmId: string; ip: string }, from: string, asTenant: AsTenant, timeoutMs = 150_000): Promise<void> {
    await this.trust(vm, asTenant, timeoutMs);
    // The master goes to the background once logged in (-f); its output is nobody's, so no caller waits on its pipes.
    const exit = await new Promise<number | null>((resolve) =>
      spawn('ip', ['netns', 'exec', from, 'ssh', ...this.options, '-M', '-f', '-N', `root@${vm.ip}`], { stdio: 'ignore' }).once('exit', resolve),
    );
    if (exit !== 0) throw new Error(`ssh to ${vm.vmId} (${vm.ip}) exited ${exit}`);
    this.via.set(vm.ip, from);
  }

  /** Runs a shell command in the guest: its stdout. */
  async run(vm: { ip: string }, command: string): Promise<string> {
    return (await run('ip', ['netns', 'exec', this.from(vm), 'ssh', ...this.options, `root@${vm.ip}`, command])).stdout;
  }

  /** Ends the master connections and forgets the key. */
  async close(): Promise<void> {
    await Promise.all(
      [...this.via].map(([ip, from]) => run('ip', ['netns', 'exec', from, 'ssh', ...this.options, '-O', 'exit', `root@${ip}`]).catch(() => {})),
    );
    this.via.clear();
    rmSync(this.dir, { recursive: true, force: true });
  }

  private from(vm: { ip: string }): string {
    const from = this.via.get(vm.ip);
    if (!from) throw new Error(`not connected to ${vm.ip}: connect first`);
    return from;
  }
}
