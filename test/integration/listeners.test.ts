import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, startAgent, type RunningAgent } from '../helpers/agents.ts';
import { api, createVmOn, expectOk, uniqueId } from '../helpers/api.ts';
import { isLoopback, listeningSockets, processTree } from '../helpers/listening-sockets.ts';

/**
 * Local mode is for one machine: the emulator signs with any key for anyone who asks, so every
 * listener the stack opens — LocalStack, the DynamoDB Local it runs, the proxy before them, the
 * functions' runners, the API, host agents with their VM bridges and bid relay — binds loopback.
 */
describe('the local stack listens on loopback only', () => {
  let agent: RunningAgent;

  beforeAll(async () => {
    agent = await startAgent(uniqueId('listen'), '198.51.100.202');
    const { networkId } = await expectOk(api('POST', '/networks', { name: 'listeners', cidr: '10.93.0.0/24' }), 201);
    const vm = await expectOk(createVmOn({ name: 'listener', networkId, hostId: agent.hostId }), 201);
    await eventually(async () => expect(((await agent.status()) as any).vms[vm.vmId]).toBeDefined(), 30_000, 200);
  }, 60_000);

  afterAll(async () => {
    await agent?.process.stop();
  });

  it('has no socket bound to a non-loopback address (read from /proc/<pid>/net/tcp*, udp*)', () => {
    // Test files run in workers of the vitest process, whose global setup started the whole stack.
    const sockets = listeningSockets(processTree(process.ppid));
    const commands = new Set(sockets.map((socket) => socket.command.split(' ')[0]!.split('/').at(-1)));
    // The run's own processes are all there: the emulator (python), DynamoDB Local (java), node.
    expect([...commands].sort()).toEqual(expect.arrayContaining(['java', 'node', 'python']));
    const exposed = sockets.filter((socket) => !isLoopback(socket.address));
    expect(exposed.map((socket) => `${socket.protocol} ${socket.address}:${socket.port} (pid ${socket.pid}: ${socket.command})`)).toEqual([]);
  });
});
