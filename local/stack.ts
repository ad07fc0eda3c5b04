import path from 'node:path';
import { LocalAwsSetupError } from './aws/local-aws.ts';
import { startConsole, type RunningConsole } from './console/console-server.ts';
import { type LocalStack, startLocalStack } from './local-stack.ts';
import { createApiClient } from '#events/api-client.ts';
import { publishGuestImage } from './guest-image/publish.ts';
import { serveStackControl } from './stack-control.ts';
import { removeStackState, stackStateFile, writeStackState } from './stack-state.ts';

/** `npm start`: the local AWS, the control plane (runner + API) and host agents on 127.0.0.1, until Ctrl-C. */

// Listening from the first moment: a signal while starting stops what was started so far, instead
// of leaving the local AWS, runners and agents behind (a process manager sends SIGTERM or SIGINT
// to this process alone; a closed terminal, SIGHUP).
const startup = new AbortController();
let starting: Promise<LocalStack> | undefined;
let webConsole: RunningConsole | undefined;
let control: { close(): Promise<void> } | undefined;
let stopping = false;
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(signal, () => {
    // Once: a Ctrl-C reaches this process twice (from the terminal, and passed on by bootstrap.mjs).
    if (stopping) return;
    stopping = true;
    console.error(`\n[stack] ${signal}: stopping everything it started`);
    startup.abort();
    void (async () => {
      removeStackState();
      // Started or not, whatever the start-up made is stopped before this process exits. At once:
      // agents a Ctrl-C reached too are ending, and their supervisors must not restart them.
      const stack = await starting?.catch(() => undefined);
      await Promise.all([stack?.stop(), control?.close(), webConsole?.close()]);
      process.exit(0);
    })();
  });
}

starting = startLocalStack({
  agentCount: Number(process.env.STRATOPLANE_AGENTS ?? 3),
  apiPort: Number(process.env.STRATOPLANE_API_PORT ?? 3000),
  localAwsPort: Number(process.env.STRATOPLANE_LOCAL_AWS_PORT ?? 4566),
  signal: startup.signal,
});
const stack = await starting.catch((error: Error) => {
  // Stopping already: the handler above exits once the start-up has cleaned up.
  if (stopping) return new Promise<never>(() => {});
  // Setup problems say what to do; a stack trace would only bury that.
  console.error(error instanceof LocalAwsSetupError ? `npm start: ${error.message}` : error);
  process.exit(1);
});

const api = stack.runner.apiUrl;
// With fewer than three agents (STRATOPLANE_AGENTS), the hints reuse the ones there are.
const [first, second = first, third = second] = stack.agents;
const tenantToken = await stack.issueToken('tenant', 'demo');
const operatorToken = await stack.issueToken('operator', 'local-admin');
// The project's own bootable image, public, so any tenant can boot it (on agents run with --runtime qemu).
const guestImage = await publishGuestImage(createApiClient({ baseUrl: api, token: operatorToken }), (line) => console.error(line)).catch((error: Error) => {
  console.error(`[stack] the guest image is not published: ${error.message}`);
  return undefined;
});
const consolePort = Number(process.env.STRATOPLANE_CONSOLE_PORT ?? 3001);
webConsole = await startConsole({
  port: consolePort,
  apiUrl: api,
  views: { demo: tenantToken, operator: operatorToken },
  agents: stack.agents,
  log: (line) => console.error(line),
}).catch(async (error: Error) => {
  console.error(`npm start: the web console cannot listen on 127.0.0.1:${consolePort} (${error.message}); set STRATOPLANE_CONSOLE_PORT to a free port`);
  await stack.stop();
  process.exit(1);
});
// `npm run agent` asks through this socket; the state file tells it (and operator commands) where things are.
const controlSocket = path.join(path.dirname(stackStateFile), 'stack.sock');
control = await serveStackControl(controlSocket, stack).catch(async (error: Error) => {
  console.error(`npm start: ${error.message}`);
  await stack.stop();
  process.exit(1);
});
process.on('exit', () => removeStackState());
writeStackState({
  pid: process.pid,
  startedAt: new Date().toISOString(),
  apis: stack.runners.map((runner) => ({ region: runner.region, apiUrl: runner.apiUrl })),
  awsEndpoint: stack.aws.endpoint,
  controlSocket,
  agents: stack.agents,
  // The local AWS takes any key; `test` is its default account's, as the stack's own processes use.
  operatorEnv: { AWS_ENDPOINT_URL: stack.aws.endpoint, AWS_REGION: stack.runner.region, AWS_ACCESS_KEY_ID: 'test', AWS_SECRET_ACCESS_KEY: 'test' },
});
console.log(`
Stratoplane is running locally.
  API            ${api}${
    stack.runners.length > 1
      ? ` (${stack.runner.region})\n${stack.runners
          .slice(1)
          .map((other) => `                 ${other.apiUrl} (${other.region})`)
          .join('\n')}\n  replication    the global table, between ${stack.runners.map((runner) => runner.region).join(', ')}, by local/replicator.ts`
      : ''
  }
  local AWS      ${stack.aws.endpoint}${stack.aws.started ? ` (${stack.aws.description}, started here)` : ' (from AWS_ENDPOINT_URL)'}
  host agents    ${stack.agents.map((agent) => `${agent.hostId} (${agent.address}): status on ${agent.controlSocket}`).join('\n                 ')}
  web console    ${webConsole.url}  (hosts, networks, VMs and the tunnel endpoints each agent holds, live; as tenant demo,
                 or everything, as the operator: ${webConsole.url}?view=operator)
  guest image    ${guestImage ? `${guestImage.imageId} (public: any tenant launches it with "imageId"; ${guestImage.uploaded ? 'uploaded now' : 'already there'})` : 'not published (see above)'}

Every call needs a bearer token. These two were issued for you (30 days):
  export TOKEN=${tenantToken}
  export OPERATOR_TOKEN=${operatorToken}
More, while this runs (in this folder): npm run -s issue-token -- --tenant acme
An agent that dies is restarted here; to restart one now: npm run agent -- --host ${first?.hostId ?? 'host-1'}

Try it (jq optional):
  AUTH="authorization: Bearer $TOKEN" OPERATOR="authorization: Bearer $OPERATOR_TOKEN" JSON="content-type: application/json"
  NET=$(curl -s -H "$AUTH" -H "$JSON" -XPOST ${api}/networks -d '{"name":"demo","cidr":"10.0.0.0/24"}' | jq -r .networkId)
  # Tenants do not pick hosts (placement does; "spreadFrom":["vm-…"] keeps their VMs apart); an operator may, for a tenant:
  VM=$(curl -s -H "$OPERATOR" -H "$JSON" -XPOST ${api}/vms -d '{"name":"web-1","networkId":"'$NET'","tenantId":"demo","hostId":"${first?.hostId}"}' | jq -r .vmId)
  curl -s -H "$OPERATOR" -H "$JSON" -XPOST ${api}/vms -d '{"name":"web-2","networkId":"'$NET'","tenantId":"demo","hostId":"${second?.hostId}"}'
  curl -s --unix-socket ${second?.controlSocket} http://agent/status | jq .routes   # ${second?.hostId} reaches web-1 via ${first?.address}
  curl -s -H "$OPERATOR" -H "$JSON" -XPOST ${api}/vms/$VM/migrate -d '{"targetHostId":"${third?.hostId}"}'   # a tenant sends {} and placement picks
  curl -s --unix-socket ${second?.controlSocket} http://agent/status | jq .routes   # ...now via ${third?.address}
  curl -s -H "$OPERATOR" ${api}/hosts | jq .

Ctrl-C stops everything.`);
