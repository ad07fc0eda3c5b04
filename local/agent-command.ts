import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { agentRequest } from '#host-agent/agent-control-client.ts';
import type { SupervisedStatus } from './supervisor.ts';
import { runningStack, stackStateFile } from './stack-state.ts';

/** `npm run agent -- --host ID`: asks the running `npm start` to (re)start one of its host agents. */
export const usage = `usage: npm run agent -- --host ID | --list

Starts one host agent of the \`npm start\` running in this folder, or restarts it if it runs, with the
command line and environment the stack gave it at start (a fresh host token, its local AWS and API).
Its supervisor starts over: restarts with back-off after a death, giving up after repeated deaths.
Its log goes to npm start's output; this prints its pid and status socket once it is ready.
  --host ID   the host: one of npm start's agents (host-1, host-2, ...)
  --list      each agent's state (running, waiting to restart, gave up), deaths and restarts
  -h, --help  this text`;

export type AgentCommand = { kind: 'help' } | { kind: 'list' } | { kind: 'restart'; hostId: string } | { kind: 'usage-error'; message: string };

export function parseAgentCommand(argv: string[]): AgentCommand {
  let values: { host?: string; list?: boolean; help?: boolean };
  try {
    ({ values } = parseArgs({ args: argv, options: { host: { type: 'string' }, list: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } } }));
  } catch (error) {
    return { kind: 'usage-error', message: (error as Error).message };
  }
  if (values.help) return { kind: 'help' };
  if (values.list && values.host === undefined) return { kind: 'list' };
  if (values.host && !values.list) return { kind: 'restart', hostId: values.host };
  return { kind: 'usage-error', message: 'give --host ID or --list' };
}

async function main(): Promise<number> {
  const command = parseAgentCommand(process.argv.slice(2));
  if (command.kind === 'help') {
    console.log(usage);
    return 0;
  }
  if (command.kind === 'usage-error') {
    console.error(`npm run agent: ${command.message}\n\n${usage}`);
    return 2;
  }
  const stack = runningStack();
  if (!stack) {
    console.error(`npm run agent: no \`npm start\` runs in this folder (${stackStateFile} is missing or its process ended): start the stack with npm start`);
    return 1;
  }
  if (command.kind === 'list') {
    const { body } = await agentRequest(stack.controlSocket, 'GET', '/agents');
    for (const agent of (body as { agents: (SupervisedStatus & { hostId: string })[] }).agents)
      console.log(
        `${agent.hostId}  ${agent.state}${agent.pid ? ` (pid ${agent.pid})` : ''}  deaths ${agent.deaths}  restarts ${agent.restarts}${agent.lastExit ? `  last: ${agent.lastExit}` : ''}`,
      );
    return 0;
  }
  console.error(`asking npm start (pid ${stack.pid}) to start ${command.hostId}'s agent...`);
  // Longer than the agent's own start-up limit: its answer comes once the agent is ready, or why not.
  const { status, body } = await agentRequest(stack.controlSocket, 'POST', `/agents/${encodeURIComponent(command.hostId)}/restart`, undefined, 120_000);
  if (status !== 200) {
    console.error(`npm run agent: ${(body as { message?: string }).message ?? `npm start answered ${status}`}`);
    return status === 404 ? 2 : 1;
  }
  const agent = body as { hostId: string; address: string; controlSocket: string; pid: number };
  console.log(`${agent.hostId}'s agent runs (pid ${agent.pid}, address ${agent.address}); its log is in npm start's output
status: curl -s --unix-socket ${agent.controlSocket} http://agent/status`);
  return 0;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().then(
    (code) => process.exit(code),
    (error: Error) => {
      console.error(`npm run agent: ${error.message}`);
      process.exit(1);
    },
  );
}
