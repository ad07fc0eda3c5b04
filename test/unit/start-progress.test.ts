import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { StartProgress } from '../../host-agent/start-progress.ts';

describe("the agent's start phases", () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it('says nothing of a quick phase, and names a slow one while it runs and when it ends', async () => {
    const lines: string[] = [];
    const progress = new StartProgress((line) => lines.push(line), 5_000);
    await progress.phase('checking its queue', async () => {});
    expect(lines).toEqual([]);

    let finish!: () => void;
    const slow = progress.phase('registering with the API', () => new Promise<void>((resolve) => (finish = resolve)));
    await vi.advanceTimersByTimeAsync(11_000);
    expect(lines).toEqual(['starting: still registering with the API after 5 s', 'starting: still registering with the API after 10 s']);
    finish();
    await slow;
    expect(lines.at(-1)).toBe('starting: registering with the API took 11000 ms');
    expect(progress.elapsedMs()).toBe(11_000);

    // Ended, it says no more.
    await vi.advanceTimersByTimeAsync(20_000);
    expect(lines).toHaveLength(3);
  });

  it('passes a failing phase on, having said how long it took', async () => {
    const lines: string[] = [];
    const progress = new StartProgress((line) => lines.push(line), 1_000);
    const failing = progress.phase('opening the data plane', async () => {
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      throw new Error('no such namespace');
    });
    const outcome = expect(failing).rejects.toThrow('no such namespace');
    await vi.advanceTimersByTimeAsync(1_500);
    await outcome;
    expect(lines).toEqual(['starting: still opening the data plane after 1 s', 'starting: opening the data plane took 1500 ms']);
  });
});
