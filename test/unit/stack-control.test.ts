import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { agentRequest } from '../../host-agent/agent-control-client.ts';
import { parseAgentCommand } from '../../local/agent-command.ts';
import { UnknownAgentError } from '../../local/local-stack.ts';
import { serveStackControl } from '../../local/stack-control.ts';
import { runningStack, type StackState, writeStackState } from '../../local/stack-state.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'stack-control-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('npm run agent: its command line', () => {
  it('takes --host ID or --list, prints usage for --help and -h, refuses anything else', () => {
    expect(parseAgentCommand(['--host', 'host-2'])).toEqual({ kind: 'restart', hostId: 'host-2' });
    expect(parseAgentCommand(['--list'])).toEqual({ kind: 'list' });
    expect(parseAgentCommand(['--help'])).toEqual({ kind: 'help' });
    expect(parseAgentCommand(['-h'])).toEqual({ kind: 'help' });
    expect(parseAgentCommand([])).toEqual({ kind: 'usage-error', message: 'give --host ID or --list' });
    expect(parseAgentCommand(['--host', 'a', '--list'])).toMatchObject({ kind: 'usage-error' });
    expect(parseAgentCommand(['--hots', 'host-2'])).toMatchObject({ kind: 'usage-error', message: expect.stringContaining("'--hots'") });
  });
});

describe("npm start's state file", () => {
  const state = (pid: number): StackState => ({
    pid,
    startedAt: new Date().toISOString(),
    apis: [{ region: 'us-east-1', apiUrl: 'http://127.0.0.1:3000/v1' }],
    awsEndpoint: 'http://127.0.0.1:4566',
    controlSocket: path.join(dir, 'stack.sock'),
    agents: [],
    operatorEnv: { AWS_ENDPOINT_URL: 'http://127.0.0.1:4566', AWS_REGION: 'us-east-1', AWS_ACCESS_KEY_ID: 'test', AWS_SECRET_ACCESS_KEY: 'test' },
  });

  it('counts only while the process that wrote it runs', () => {
    const file = path.join(dir, 'stack.json');
    expect(runningStack(file)).toBeUndefined();
    writeStackState(state(process.pid), file);
    expect(runningStack(file)).toMatchObject({ pid: process.pid, operatorEnv: { AWS_REGION: 'us-east-1' } });
    const ended = spawnSync(process.execPath, ['-e', '']).pid;
    writeStackState(state(ended), file);
    expect(runningStack(file)).toBeUndefined();
  });
});

describe("npm start's control socket", () => {
  it('restarts an agent when asked, and says which hosts there are or why it failed', async () => {
    const restarted: string[] = [];
    const socket = path.join(dir, 'stack.sock');
    const control = await serveStackControl(socket, {
      restartAgent: async (hostId) => {
        if (hostId === 'host-9') throw new UnknownAgentError(hostId, ['host-1', 'host-2']);
        if (hostId === 'host-3') throw new Error("host-3's agent did not start (exit code 1)");
        restarted.push(hostId);
        return { hostId, address: '192.0.2.12', controlSocket: '/x/agent.sock', pid: 42 };
      },
      agentStates: () => [{ hostId: 'host-2', name: "host-2's agent", state: 'gave up', pid: null, deaths: 5, restarts: 4, lastExit: 'signal SIGKILL' }],
    });
    try {
      expect(await agentRequest(socket, 'POST', '/agents/host-2/restart')).toEqual({
        status: 200,
        body: { hostId: 'host-2', address: '192.0.2.12', controlSocket: '/x/agent.sock', pid: 42 },
      });
      expect(restarted).toEqual(['host-2']);
      expect(await agentRequest(socket, 'POST', '/agents/host-9/restart')).toEqual({
        status: 404,
        body: { message: "host-9 is not one of this stack's hosts (host-1, host-2)" },
      });
      expect(await agentRequest(socket, 'POST', '/agents/host-3/restart')).toEqual({
        status: 500,
        body: { message: "host-3's agent did not start (exit code 1)" },
      });
      expect((await agentRequest(socket, 'GET', '/agents')).body).toMatchObject({ agents: [{ hostId: 'host-2', state: 'gave up' }] });
      // A second stack on the same socket is refused while the first answers.
      await expect(serveStackControl(socket, { restartAgent: async () => Promise.reject(new Error()), agentStates: () => [] })).rejects.toThrow(
        /another npm start/,
      );
    } finally {
      await control.close();
    }
  });
});
