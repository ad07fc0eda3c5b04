import { afterEach, describe, expect, it } from 'vitest';
import { EndpointAcks, type EndpointAck } from '../../host-agent/endpoint-acks.ts';

describe('EndpointAcks', () => {
  const running: EndpointAcks[] = [];
  afterEach(async () => {
    await Promise.all(running.splice(0).map((acks) => acks.stop()));
  });

  /** An agent's acknowledger whose requests land in `requests`, failing while `down` is set. */
  function acknowledger(options: ConstructorParameters<typeof EndpointAcks>[2] = {}) {
    const requests: EndpointAck[][] = [];
    const state = { down: false, logs: [] as string[] };
    const acks = new EndpointAcks(
      async (batch) => {
        if (state.down) throw new Error('control plane unreachable');
        requests.push(batch);
      },
      (line) => state.logs.push(line),
      { flushMs: 5, retryMs: 5, ...options },
    );
    running.push(acks);
    return { acks, requests, state };
  }
  const settle = () => new Promise((resolve) => setTimeout(resolve, 40));

  it("sends changes of one interval together, a VM's latest version only, in batches of the API's size", async () => {
    const { acks, requests } = acknowledger({ batchSize: 100 });
    acks.record('vm-a', 2);
    acks.record('vm-a', 4);
    acks.record('vm-a', 3);
    for (let i = 0; i < 150; i++) acks.record(`vm-${i}`, 1);
    await settle();
    expect(requests.map((batch) => batch.length).sort()).toEqual([100, 51]);
    expect(requests.flat().filter((ack) => ack.vmId === 'vm-a')).toEqual([{ vmId: 'vm-a', version: 4 }]);
    // What went out is not sent again, nor anything older.
    acks.record('vm-a', 4);
    acks.record('vm-a', 1);
    await settle();
    expect(requests).toHaveLength(2);
  });

  it('sends again what failed, unless a newer version replaced it meanwhile', async () => {
    const { acks, requests, state } = acknowledger();
    state.down = true;
    acks.record('vm-a', 1);
    acks.record('vm-b', 1);
    await settle();
    expect(requests).toEqual([]);
    expect(acks.pendingCount).toBe(2);
    expect(state.logs[0]).toBe('acknowledging 2 endpoint version(s) failed (control plane unreachable); will retry');
    acks.record('vm-b', 2);
    state.down = false;
    await settle();
    expect(requests.flat().sort((x, y) => x.vmId.localeCompare(y.vmId))).toEqual([
      { vmId: 'vm-a', version: 1 },
      { vmId: 'vm-b', version: 2 },
    ]);
    expect(acks.stats).toMatchObject({ acksSent: 2 });
    expect(acks.pendingCount).toBe(0);
  });

  it('acknowledges again, at a resync, what it still holds but acknowledged long ago, and forgets what it no longer holds', async () => {
    const { acks, requests } = acknowledger({ reaffirmAfterMs: 60_000 });
    acks.record('vm-a', 3);
    acks.record('vm-b', 1);
    await settle();
    // Soon after: nothing to say again.
    acks.reaffirm([
      { vmId: 'vm-a', version: 3 },
      { vmId: 'vm-b', version: 1 },
    ]);
    await settle();
    expect(requests).toHaveLength(1);
    // Past the period, what is held goes out again; vm-b is gone from the host and is forgotten.
    acks.reaffirm([{ vmId: 'vm-a', version: 3 }], Date.now() + 60_000);
    await settle();
    expect(requests.slice(1)).toEqual([[{ vmId: 'vm-a', version: 3 }]]);
    acks.record('vm-b', 1);
    await settle();
    expect(requests.slice(2)).toEqual([[{ vmId: 'vm-b', version: 1 }]]);
  });

  it('makes one last attempt when stopped', async () => {
    const { acks, requests } = acknowledger({ flushMs: 60_000 });
    acks.record('vm-a', 7);
    await acks.stop();
    expect(requests).toEqual([[{ vmId: 'vm-a', version: 7 }]]);
  });
});
