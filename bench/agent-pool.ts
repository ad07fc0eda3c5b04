import { createWriteStream } from 'node:fs';
import { Agent } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { KMSClient } from '@aws-sdk/client-kms';
import { SQSClient } from '@aws-sdk/client-sqs';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { deploymentFromEnvironment, keyAlias } from '#events/naming.ts';
import { scopesFor } from '#events/tokens.ts';
import { HostAgent } from '#host-agent/agent.ts';
import { issueApiToken } from '#tokens/api-tokens.ts';
import { KmsJwsSigner } from '#tokens/kms-signer.ts';

/**
 * Many simulated hosts in one process, for bench:load: each is a real HostAgent (registration,
 * its own queue long-polled, forwarding table, resyncs, acknowledgements, credential refreshes)
 * without what a host offers its VMs (status server, bridges, bid relay). Driven over IPC by
 * bench/load.ts: `{type: 'start', apiUrl, hosts}` starts hosts, and the pool reports every
 * endpoint version its agents apply, with the time, in batches.
 */
export type PoolCommand = { type: 'start'; apiUrl: string; capacity: number; hosts: { hostId: string; address: string }[] } | { type: 'stop' };
export type PoolReport =
  | { type: 'started'; hosts: number; ms: number }
  | { type: 'applied'; events: [hostId: string, vmId: string, version: number, at: number][] }
  | { type: 'failed'; message: string };

// Hundreds of 20 s long polls at once: the SDK's default of 50 sockets would queue them.
const sqs = new SQSClient({ requestHandler: new NodeHttpHandler({ httpAgent: new Agent({ keepAlive: true, maxSockets: 4096 }) }) });
const kms = new KMSClient({});
const signer = new KmsJwsSigner(kms, keyAlias('api-tokens', deploymentFromEnvironment()));
const agents: HostAgent[] = [];
let pending: PoolReport & { type: 'applied' } = { type: 'applied', events: [] };
const send = (report: PoolReport) => process.send!(report);

setInterval(() => {
  if (pending.events.length === 0) return;
  send(pending);
  pending = { type: 'applied', events: [] };
}, 25).unref();

/** Runs `work` over `items`, `limit` at a time. */
async function inParallel<T>(items: readonly T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) await work(items[next++]!);
    }),
  );
}

async function start(command: Extract<PoolCommand, { type: 'start' }>) {
  const began = Date.now();
  await inParallel(command.hosts, 16, async ({ hostId, address }) => {
    const { token } = await issueApiToken(signer, { subject: `host:${hostId}`, scopes: scopesFor.host, ttlSeconds: 86_400 });
    const agent = new HostAgent(
      {
        hostId,
        address,
        capacity: command.capacity,
        apiUrl: command.apiUrl,
        token: () => token,
        controlSocket: '',
        bidPort: 0,
        spillDir: path.join(tmpdir(), `stratoplane-load-${hostId}`),
        resyncIntervalMs: 300_000,
        hostServices: false,
        onEndpointApplied: (vmId, version) => pending.events.push([hostId, vmId, version, Date.now()]),
      },
      sqs,
      kms,
    );
    await agent.start();
    agents.push(agent);
  });
  send({ type: 'started', hosts: command.hosts.length, ms: Date.now() - began });
}

process.on('message', (command: PoolCommand) => {
  if (command.type === 'start') start(command).catch((error: Error) => send({ type: 'failed', message: error.stack ?? error.message }));
  if (command.type === 'stop') void Promise.all(agents.map((agent) => agent.stop())).finally(() => process.exit(0));
});
// Agents log loss of contact and retries: a thousand of them go to a file, not the bench's output.
const logFile = createWriteStream(process.env.STRATOPLANE_POOL_LOG ?? '/dev/null', { flags: 'a' });
console.error = (...parts: unknown[]) => void logFile.write(`${parts.join(' ')}\n`);
