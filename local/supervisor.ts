import type { ChildProcess } from 'node:child_process';
import { describeExit, NotReadyError } from './processes.ts';
import { DEFAULT_RESTART_POLICY, describeDuration, RestartPolicy, type RestartPolicyOptions } from './restart-policy.ts';

/** What the supervisor needs of a started process: to watch it die, and to stop it. */
export interface SupervisableProcess {
  child: ChildProcess;
  stop(): Promise<void>;
}

export type SupervisedState = 'starting' | 'running' | 'waiting to restart' | 'gave up' | 'stopped';

export interface SupervisedStatus {
  name: string;
  state: SupervisedState;
  pid: number | null;
  deaths: number;
  restarts: number;
  lastExit: string | null;
}

/**
 * Keeps one process running: started again after each death, with back-off (RestartPolicy), and
 * given up on loudly after too many deaths in a row. Each death and each restart is one log line.
 * `restartNow()` (what `npm run agent` asks for) starts it at once, whatever its state, with the
 * back-off forgotten.
 */
export class Supervised<P extends SupervisableProcess> {
  private current: P | undefined;
  private state: SupervisedState = 'starting';
  private readonly policy: RestartPolicy;
  /** Each start, restart and stop takes a new number: a process or timer of an older one is stale. */
  private generation = 0;
  private timer: NodeJS.Timeout | undefined;
  private inFlight: Promise<unknown> | undefined;
  private deaths = 0;
  private restarts = 0;
  private lastExit: string | null = null;

  constructor(
    private readonly options: {
      /** As log lines name it: "host-2's agent". */
      name: string;
      /**
       * Starts the process and resolves once it is ready; rejects if it is not (a NotReadyError says
       * how it ended). `signal` is given to the first start only (a stop while starting up).
       */
      start: (signal?: AbortSignal) => Promise<P>;
      log: (line: string) => void;
      /** What a person runs to start it again after the supervisor gave up. */
      restartHint: string;
      policy?: RestartPolicyOptions;
    },
  ) {
    this.policy = new RestartPolicy(options.policy ?? DEFAULT_RESTART_POLICY);
  }

  /** The first start: a failure is the caller's (nothing is restarted before it ever ran). */
  start(signal?: AbortSignal): Promise<P> {
    const generation = ++this.generation;
    const attempt = this.options.start(signal).then(async (started) => {
      if (generation !== this.generation) {
        await started.stop();
        throw new Error(`${this.options.name} was stopped while it started`);
      }
      this.adopt(started, generation);
      return started;
    });
    // stop() waits for it, so nothing it started outlives the stop.
    this.inFlight = attempt.catch(() => {});
    return attempt;
  }

  /** Stops the process (if any) and starts it again now; resolves once it is ready. */
  async restartNow(): Promise<P> {
    if (this.state === 'stopped') throw new Error(`${this.options.name} is stopping`);
    const generation = ++this.generation;
    clearTimeout(this.timer);
    this.policy.reset();
    this.state = 'starting';
    // A restart under way ends first (it stops what it started, now unwanted): never two at once on one socket.
    await this.inFlight;
    const previous = this.current;
    this.current = undefined;
    await previous?.stop();
    if (generation !== this.generation) throw new Error(`${this.options.name} was stopped or restarted meanwhile`);
    const attempt = this.attempt(generation, 'restarted as asked');
    this.inFlight = attempt;
    const started = await attempt;
    if (!started)
      throw new Error(
        `${this.options.name} did not start (${this.lastExit ?? 'stopped'}): its own lines in the stack's log say why; it is tried again with back-off`,
      );
    return started;
  }

  async stop(): Promise<void> {
    this.state = 'stopped';
    this.generation++;
    clearTimeout(this.timer);
    const current = this.current;
    this.current = undefined;
    await Promise.all([current?.stop(), this.inFlight]);
  }

  status(): SupervisedStatus {
    return {
      name: this.options.name,
      state: this.state,
      pid: this.current?.child.pid ?? null,
      deaths: this.deaths,
      restarts: this.restarts,
      lastExit: this.lastExit,
    };
  }

  private adopt(started: P, generation: number): void {
    this.current = started;
    this.state = 'running';
    const startedAt = Date.now();
    const { child } = started;
    const onExit = (code: number | null, signal: NodeJS.Signals | null) => {
      if (generation !== this.generation) return; // stopped or replaced on purpose
      this.current = undefined;
      this.died(describeExit({ code, signal }), child.pid, Date.now() - startedAt, false);
    };
    // It may have died between its ready line and now.
    if (child.exitCode !== null || child.signalCode !== null) onExit(child.exitCode, child.signalCode);
    else child.once('exit', onExit);
  }

  private died(why: string, pid: number | undefined, ranMs: number, beforeReady: boolean): void {
    this.deaths++;
    this.lastExit = why;
    const how = `${pid ? ` (pid ${pid})` : ''} ${beforeReady ? `did not start (${this.lastExit})` : `died (${this.lastExit})`}`;
    const decision = this.policy.died(Date.now(), ranMs);
    if (!decision.restart) {
      this.state = 'gave up';
      this.options.log(
        `[stack] GIVING UP: ${this.options.name}${how}, ${decision.deaths} deaths within ${describeDuration(this.policy.options.windowMs)}; it stays down. Fix the cause (its lines above), then: ${this.options.restartHint}`,
      );
      return;
    }
    this.state = 'waiting to restart';
    this.options.log(`[stack] ${this.options.name}${how}; restarting it in ${describeDuration(decision.delayMs)}`);
    const generation = this.generation;
    this.timer = setTimeout(() => {
      if (generation !== this.generation) return;
      this.state = 'starting';
      this.inFlight = this.attempt(generation, 'restarted');
    }, decision.delayMs);
  }

  /** One start; undefined when it failed (counted as a death) or was superseded. */
  private async attempt(generation: number, verb: string): Promise<P | undefined> {
    const began = Date.now();
    let started: P;
    try {
      started = await this.options.start();
    } catch (error) {
      if (generation !== this.generation) return undefined;
      this.died(whyNotStarted(error), undefined, Date.now() - began, true);
      return undefined;
    }
    if (generation !== this.generation) {
      // Stopped or restarted by hand meanwhile: this one is not wanted.
      await started.stop();
      return undefined;
    }
    this.restarts++;
    this.adopt(started, generation);
    this.options.log(`[stack] ${this.options.name} ${verb} (pid ${started.child.pid})`);
    return started;
  }
}

/** How a start failed, in a few words: the exit, or the first line of the error. */
function whyNotStarted(error: unknown): string {
  if (error instanceof NotReadyError && error.exit) return describeExit(error.exit);
  return (error as Error).message.split('\n')[0] ?? String(error);
}
