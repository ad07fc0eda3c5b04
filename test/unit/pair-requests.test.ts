import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { NetworkPairs } from '../../host-agent/data-plane/network-pairs.ts';
import { OutboundPairs } from '../../host-agent/pair-requests.ts';
import { ApiError } from '#events/api-client.ts';

/**
 * The source's half of a pair, its decisions alone: the destination host is a real HTTP server on
 * loopback, the kernel's part a recorder of routes.
 */
describe("a pair's source host", () => {
  let destinationHost: http.Server;
  let port = 0;
  beforeAll(async () => {
    destinationHost = http.createServer((_request, response) => response.writeHead(200, { 'content-type': 'application/json' }).end('{}'));
    await new Promise<void>((resolve) => destinationHost.listen(0, '127.0.0.1', resolve));
    port = (destinationHost.address() as AddressInfo).port;
  });
  afterAll(() => new Promise<void>((resolve) => destinationHost.close(() => resolve())));

  const setUp = () => {
    const mints: string[] = [];
    const routes: string[] = [];
    const pairs = {
      route: async (end: { remoteHost: string }) => void routes.push(`route ${end.remoteHost}`),
      withdrawRoute: async (end: { remoteHost: string }) => void routes.push(`withdraw ${end.remoteHost}`),
    } as unknown as NetworkPairs;
    const outbound = new OutboundPairs({
      requestConnection: async (_source, destinationVmId) => {
        mints.push(destinationVmId);
        return {
          destinationVmId,
          destinationIp: '10.1.0.2',
          destinationHostAddress: mints.length === 1 ? '192.0.2.12' : '192.0.2.13',
          token: 'token',
          expiresAt: new Date(Date.now() + 300_000).toISOString(),
        };
      },
      connect: async () => net.connect(port, '127.0.0.1'),
      sameNetwork: () => false,
      pairs,
      changed: () => {},
      log: () => {},
    });
    return { outbound, mints, routes };
  };
  const vm = { vmId: 'vm-src', ip: '10.0.0.2', networkId: 'net-a' };

  it('heeds a move notice only from the host the pair goes to, and then follows the VM to its new host', async () => {
    const { outbound, mints, routes } = setUp();
    expect(await outbound.open(vm, 'vm-dst')).toMatchObject({ via: 'pair', destinationIp: '10.1.0.2' });
    outbound.destinationMoved({ sourceVmId: 'vm-src', destinationVmId: 'vm-dst' }, '192.0.2.99');
    outbound.destinationMoved({ sourceVmId: 'vm-src', destinationVmId: 'vm-other' }, '192.0.2.12');
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(mints).toEqual(['vm-dst']);
    outbound.destinationMoved({ sourceVmId: 'vm-src', destinationVmId: 'vm-dst' }, '192.0.2.12');
    await vi.waitFor(() => expect(routes).toEqual(['route 192.0.2.12', 'withdraw 192.0.2.12', 'route 192.0.2.13']), { timeout: 5_000 });
    expect(mints).toEqual(['vm-dst', 'vm-dst']);
    expect(outbound.list()).toEqual([expect.objectContaining({ destinationHost: '192.0.2.13' })]);
    outbound.stopRenewing();
  });

  it("tells the VM to retry when the control plane cannot be asked, and logs why for the operator; a refusal is the control plane's answer", async () => {
    const logged: string[] = [];
    const answers = [
      new Error('connect ECONNREFUSED 127.0.0.1:4566'),
      new ApiError('requestConnection', 'POST', '/vms/vm-src/connections', 403, 'Forbidden', 'vm vm-src may not open pairs to vm vm-dst'),
    ];
    const outbound = new OutboundPairs({
      requestConnection: async () => {
        throw answers.shift();
      },
      connect: async () => net.connect(port, '127.0.0.1'),
      sameNetwork: () => false,
      pairs: {} as NetworkPairs,
      changed: () => {},
      log: (message) => logged.push(message),
    });
    await expect(outbound.open(vm, 'vm-dst')).rejects.toMatchObject({ status: 502, message: expect.stringContaining('retry') });
    expect(logged).toEqual(['network pair vm-src>vm-dst: the control plane could not be asked: connect ECONNREFUSED 127.0.0.1:4566']);
    await expect(outbound.open(vm, 'vm-dst')).rejects.toMatchObject({ status: 403, by: 'control plane' });
    expect(logged).toHaveLength(1);
  });
});
