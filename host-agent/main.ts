import { parseArgs } from 'node:util';
import { SQSClient } from '@aws-sdk/client-sqs';
import { z } from 'zod';
import { ipv4Address, resourceId } from '#events/identifiers.ts';
import { HostAgent } from './agent.ts';

const usage = `usage: host-agent --host-id ID --address IPV4 --api-url URL [--capacity N] [--status-port PORT] [--resync-seconds S]
Each flag may also come from the environment: HOST_ID, HOST_ADDRESS, STRATOPLANE_API_URL, HOST_CAPACITY,
HOST_AGENT_STATUS_PORT, HOST_AGENT_RESYNC_SECONDS. AWS credentials, region and AWS_ENDPOINT_URL as for any AWS SDK.`;

const Config = z.object({
  hostId: resourceId,
  address: ipv4Address,
  apiUrl: z.url(),
  capacity: z.coerce.number().int().min(1).max(10_000),
  statusPort: z.coerce.number().int().min(0).max(65_535),
  resyncSeconds: z.coerce.number().min(1),
});

const { values } = parseArgs({
  options: {
    'host-id': { type: 'string' },
    address: { type: 'string' },
    'api-url': { type: 'string' },
    capacity: { type: 'string' },
    'status-port': { type: 'string' },
    'resync-seconds': { type: 'string' },
  },
});

const parsed = Config.safeParse({
  hostId: values['host-id'] ?? process.env.HOST_ID,
  address: values.address ?? process.env.HOST_ADDRESS,
  apiUrl: values['api-url'] ?? process.env.STRATOPLANE_API_URL,
  capacity: values.capacity ?? process.env.HOST_CAPACITY ?? 32,
  statusPort: values['status-port'] ?? process.env.HOST_AGENT_STATUS_PORT ?? 0,
  resyncSeconds: values['resync-seconds'] ?? process.env.HOST_AGENT_RESYNC_SECONDS ?? 300,
});
if (!parsed.success) {
  console.error(parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`).join('\n'));
  console.error(usage);
  process.exit(2);
}
const config = parsed.data;

const agent = new HostAgent({ ...config, resyncIntervalMs: config.resyncSeconds * 1000 }, new SQSClient({}));
const statusUrl = await agent.start();
console.error(`[agent ${config.hostId}] in-memory forwarding table (no data-plane programming in this mode); status at ${statusUrl}/status`);
// The line supervisors and tests wait for.
console.log(`HOST_AGENT_READY ${JSON.stringify({ hostId: config.hostId, statusUrl })}`);

let stopping = false;
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, async () => {
    if (stopping) return;
    stopping = true;
    await agent.stop();
    process.exit(0);
  });
}
