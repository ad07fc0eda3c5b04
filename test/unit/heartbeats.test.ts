import { describe, expect, it } from 'vitest';
import { Heartbeats } from '#host-agent/heartbeats.ts';

const tick = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('heartbeats', () => {
  it('sends one at start and one per interval, counts failures, and logs once when they start and stop failing', async () => {
    let failing = false;
    let sent = 0;
    const lines: string[] = [];
    const heartbeats = new Heartbeats(
      async () => {
        if (failing) throw new Error('connect ECONNREFUSED');
        sent++;
      },
      (line) => lines.push(line),
      20,
    );
    heartbeats.start();
    await tick(70);
    expect(sent).toBeGreaterThanOrEqual(3);
    failing = true;
    await tick(70);
    expect(heartbeats.stats.failed).toBeGreaterThanOrEqual(2);
    expect(heartbeats.stats.lastError).toBe('connect ECONNREFUSED');
    failing = false;
    await tick(50);
    heartbeats.stop();
    const after = sent;
    await tick(50);
    expect(sent).toBe(after);
    expect(heartbeats.stats.lastError).toBeUndefined();
    expect(lines).toEqual([
      'heartbeat failed (the control plane will mark this host suspect, then down): connect ECONNREFUSED',
      'heartbeats reach the control plane again',
    ]);
  });

  it('tells the agent when a heartbeat gets through after the down bound without one, once, and not after shorter gaps', async () => {
    let failing = false;
    const silences: number[] = [];
    const lines: string[] = [];
    const heartbeats = new Heartbeats(
      async () => {
        if (failing) throw new Error('timeout');
      },
      (line) => lines.push(line),
      10,
      (silentMs) => silences.push(silentMs),
      120,
    );
    heartbeats.start();
    await tick(50);
    failing = true;
    await tick(40); // shorter than the bound: nothing to say
    failing = false;
    await tick(40);
    expect(silences).toEqual([]);
    failing = true;
    await tick(150);
    failing = false;
    await tick(60);
    heartbeats.stop();
    expect(silences).toHaveLength(1);
    expect(silences[0]).toBeGreaterThanOrEqual(120);
    expect(lines).toContainEqual(expect.stringMatching(/^heard again after \d+ s of silence: the control plane may have restarted this host's VMs elsewhere$/));
  });
});
