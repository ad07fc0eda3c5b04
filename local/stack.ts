import { startLocalStack } from './local-stack.ts';

/** `npm start`: the local AWS, the control plane (runner + API) and host agents on 127.0.0.1, until Ctrl-C. */
const stack = await startLocalStack({
  agentCount: Number(process.env.STRATOPLANE_AGENTS ?? 3),
  apiPort: Number(process.env.STRATOPLANE_API_PORT ?? 3000),
  localAwsPort: Number(process.env.STRATOPLANE_LOCAL_AWS_PORT ?? 4566),
  firstStatusPort: Number(process.env.STRATOPLANE_AGENT_STATUS_PORT ?? 7001),
});

let stopping = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, async () => {
    if (stopping) return;
    stopping = true;
    console.error('\n[stack] stopping');
    await stack.stop();
    process.exit(0);
  });
}

const api = stack.runner.apiUrl;
const [first, second, third] = stack.agents;
console.log(`
Stratoplane is running locally.
  API            ${api}
  local AWS      ${stack.aws.endpoint}${stack.aws.started ? ' (moto, started here)' : ' (from AWS_ENDPOINT_URL)'}
  host agents    ${stack.agents.map((agent) => `${agent.hostId} (${agent.address}): ${agent.statusUrl}/status`).join('\n                 ')}

Try it (jq optional):
  NET=$(curl -s -XPOST ${api}/networks -d '{"name":"demo","cidr":"10.0.0.0/24"}' | jq -r .networkId)
  VM=$(curl -s -XPOST ${api}/vms -d '{"name":"web-1","networkId":"'$NET'","hostId":"${first?.hostId}"}' | jq -r .vmId)
  curl -s -XPOST ${api}/vms -d '{"name":"web-2","networkId":"'$NET'","hostId":"${second?.hostId}"}'
  curl -s ${second?.statusUrl}/status | jq .routes     # ${second?.hostId} reaches web-1 via ${first?.address}
  curl -s -XPOST ${api}/vms/$VM/migrate -d '{"targetHostId":"${third?.hostId ?? second?.hostId}"}'
  curl -s ${second?.statusUrl}/status | jq .routes     # ...now via ${third?.address ?? second?.address}

Ctrl-C stops everything.`);
