import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { startLocalAws } from './aws/local-aws.ts';
import { projectRoot, startTsProcess, type Started } from './processes.ts';
import type { RunnerInfo } from './runner.ts';

/**
 * `npm start`: the local AWS, the control plane (runner + API) and a few host agents, all on
 * 127.0.0.1, until Ctrl-C.
 */
const agentCount = Number(process.env.STRATOPLANE_AGENTS ?? 3);
const apiPort = Number(process.env.STRATOPLANE_API_PORT ?? 3000);
const firstStatusPort = Number(process.env.STRATOPLANE_AGENT_STATUS_PORT ?? 7001);
const stateDir = path.join(projectRoot, '.local-run');
mkdirSync(stateDir, { recursive: true });

const aws = await startLocalAws({ port: Number(process.env.STRATOPLANE_LOCAL_AWS_PORT ?? 4566), logFile: path.join(stateDir, 'local-aws.log') });
console.error(`[stack] local AWS at ${aws.endpoint}${aws.started ? ' (moto, started here)' : ' (from AWS_ENDPOINT_URL)'}`);
const awsEnv = {
  AWS_ENDPOINT_URL: aws.endpoint,
  AWS_REGION: process.env.AWS_REGION ?? 'us-east-1',
  AWS_ACCESS_KEY_ID: process.env.AWS_ACCESS_KEY_ID ?? 'test',
  AWS_SECRET_ACCESS_KEY: process.env.AWS_SECRET_ACCESS_KEY ?? 'test',
};
const quietBundling = (line: string) => {
  if (!/Bundling asset|index\.mjs|Done in|^\s*$|npm warn/.test(line)) console.error(line);
};

const children: Started<unknown>[] = [];
const shutdown = async () => {
  console.error('\n[stack] stopping');
  await Promise.all(children.reverse().map((child) => child.stop()));
  await aws.stop();
  process.exit(0);
};
process.once('SIGINT', shutdown);
process.once('SIGTERM', shutdown);

const runner = await startTsProcess<RunnerInfo>({
  entry: 'local/runner.ts',
  env: { ...awsEnv, STRATOPLANE_API_PORT: String(apiPort) },
  readyPrefix: 'STRATOPLANE_RUNNER_READY',
  timeoutMs: 180_000,
  onStderr: quietBundling,
});
children.push(runner);

const agents = [];
for (let i = 1; i <= agentCount; i++) {
  const agent = await startTsProcess<{ hostId: string; statusUrl: string }>({
    entry: 'host-agent/main.ts',
    // 192.0.2.0/24 is TEST-NET-1: recorded as tunnel endpoints, never sent traffic.
    args: ['--host-id', `host-${i}`, '--address', `192.0.2.${10 + i}`, '--capacity', '16', '--api-url', runner.info.apiUrl, '--status-port', String(firstStatusPort + i - 1)],
    env: awsEnv,
    readyPrefix: 'HOST_AGENT_READY',
    onStderr: (line) => console.error(line),
  });
  children.push(agent);
  agents.push(agent.info);
}

const api = runner.info.apiUrl;
console.log(`
Stratoplane is running locally.
  API            ${api}
  local AWS      ${aws.endpoint}
  host agents    ${agents.map((agent) => `${agent.hostId}: ${agent.statusUrl}/status`).join('\n                 ')}

Try it:
  curl -s -XPOST ${api}/networks -d '{"name":"demo","cidr":"10.0.0.0/24"}'
  curl -s -XPOST ${api}/vms -d '{"name":"web-1","networkId":"<networkId>","hostId":"host-1"}'
  curl -s -XPOST ${api}/vms -d '{"name":"web-2","networkId":"<networkId>","hostId":"host-2"}'
  curl -s ${agents[1]?.statusUrl ?? '<agent>'}/status        # host-2 holds web-1's tunnel endpoint
  curl -s -XPOST ${api}/vms/<vmId of web-1>/migrate -d '{"targetHostId":"host-3"}'
  curl -s ${agents[1]?.statusUrl ?? '<agent>'}/status        # ...now pointing at host-3 (192.0.2.13)

Ctrl-C stops everything.`);
