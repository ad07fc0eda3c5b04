import { spawn } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { NotReadyError } from '../../local/processes.ts';
import { Supervised } from '../../local/supervisor.ts';

/** A tiny real process: node running `code`, "ready" as soon as it is spawned. */
function tinyProcess(code: string) {
  const child = spawn(process.execPath, ['-e', code], { stdio: 'ignore' });
  return {
    child,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

const quick = { firstDelayMs: 20, maxDelayMs: 40, maxDeaths: 3, windowMs: 60_000, stableMs: 60_000 };
const until = async (check: () => boolean, timeoutMs = 10_000) => {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
};

describe('Supervised', () => {
  let supervised: Supervised<ReturnType<typeof tinyProcess>> | undefined;
  afterEach(() => supervised?.stop());

  it('says each death with its exit code and each restart, then gives up loudly', async () => {
    const lines: string[] = [];
    supervised = new Supervised({
      name: "host-9's agent",
      start: async () => tinyProcess('setTimeout(() => process.exit(3), 50)'),
      log: (line) => lines.push(line),
      restartHint: 'npm run agent -- --host host-9',
      policy: quick,
    });
    await supervised.start();
    await until(() => supervised!.status().state === 'gave up');
    const deaths = lines.filter((line) => line.includes('died (exit code 3)'));
    expect(deaths).toHaveLength(3);
    expect(deaths[0]).toMatch(/^\[stack\] host-9's agent \(pid \d+\) died \(exit code 3\); restarting it in 20 ms$/);
    expect(deaths[1]).toMatch(/restarting it in 40 ms$/);
    expect(lines.filter((line) => /^\[stack\] host-9's agent restarted \(pid \d+\)$/.test(line))).toHaveLength(2);
    expect(deaths[2]).toMatch(
      /^\[stack\] GIVING UP: host-9's agent \(pid \d+\) died \(exit code 3\), 3 deaths within 1 min; it stays down\. .*npm run agent -- --host host-9$/,
    );
    expect(lines).toHaveLength(5);
    expect(supervised.status()).toMatchObject({ state: 'gave up', pid: null, deaths: 3, restarts: 2, lastExit: 'exit code 3' });
  });

  it('names the signal that killed it, and a start that failed', async () => {
    const lines: string[] = [];
    let starts = 0;
    supervised = new Supervised({
      name: 'p',
      start: async () => {
        if (++starts === 2) throw new NotReadyError('exited (1) before it was ready', { code: 1, signal: null });
        return tinyProcess('setInterval(() => {}, 1000)');
      },
      log: (line) => lines.push(line),
      restartHint: 'again',
      policy: quick,
    });
    const first = await supervised.start();
    first.child.kill('SIGKILL');
    await until(() => supervised!.status().state === 'running' && starts === 3);
    expect(lines[0]).toMatch(/^\[stack\] p \(pid \d+\) died \(signal SIGKILL\); restarting it in 20 ms$/);
    expect(lines[1]).toBe('[stack] p did not start (exit code 1); restarting it in 40 ms');
    expect(lines[2]).toMatch(/^\[stack\] p restarted \(pid \d+\)$/);
  });

  it('restarts at once when asked, even after giving up, and stops without restarting', async () => {
    const lines: string[] = [];
    let code = 'process.exit(2)';
    supervised = new Supervised({
      name: 'p',
      start: async () => tinyProcess(code),
      log: (line) => lines.push(line),
      restartHint: 'again',
      policy: quick,
    });
    await supervised.start();
    await until(() => supervised!.status().state === 'gave up');
    code = 'setInterval(() => {}, 1000)';
    const restarted = await supervised.restartNow();
    expect(supervised.status()).toMatchObject({ state: 'running', pid: restarted.child.pid });
    expect(lines.at(-1)).toBe(`[stack] p restarted as asked (pid ${restarted.child.pid})`);
    // A running process restarted by hand: the old one is stopped, not counted as a death.
    const again = await supervised.restartNow();
    expect(restarted.child.signalCode).toBe('SIGTERM');
    expect(supervised.status()).toMatchObject({ state: 'running', pid: again.child.pid, deaths: 3 });
    const logged = lines.length;
    await supervised.stop();
    expect(again.child.signalCode).toBe('SIGTERM');
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(lines).toHaveLength(logged);
    expect(supervised.status().state).toBe('stopped');
  });

  it('never runs two at once: a restart asked for while one is starting waits for it, and stops it', async () => {
    let alive = 0;
    let most = 0;
    let starts = 0;
    supervised = new Supervised({
      name: 'p',
      start: async () => {
        starts++;
        // Slow to be ready, as an agent is.
        await new Promise((resolve) => setTimeout(resolve, 150));
        const started = tinyProcess(starts === 1 ? 'setTimeout(() => process.exit(1), 20)' : 'setInterval(() => {}, 1000)');
        most = Math.max(most, ++alive);
        started.child.once('exit', () => alive--);
        return started;
      },
      log: () => {},
      restartHint: 'again',
      policy: { ...quick, firstDelayMs: 1 },
    });
    await supervised.start();
    // The first dies at once; its restart is starting when the hand-made one is asked for.
    await until(() => starts === 2);
    const asked = await supervised.restartNow();
    expect(starts).toBe(3);
    expect(supervised.status()).toMatchObject({ state: 'running', pid: asked.child.pid });
    await until(() => alive === 1);
    expect(most).toBe(1);
  });
});
