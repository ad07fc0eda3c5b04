import { mkdirSync, rmSync, statSync } from 'node:fs';

export interface InstallLock {
  /** The lock: a directory, made atomically by the installer that wins. */
  dir: string;
  /** A lock older than this belongs to an install that died. */
  staleAfterMs: number;
  /** What waiters say once, e.g. `[local-aws] another process is installing LocalStack; waiting for it`. */
  waitingMessage: string;
}

/** One installer at a time (e.g. `npm start` and `npm test` started together on a fresh checkout). */
export async function withInstallLock(lock: InstallLock, log: (message: string) => void, install: () => void): Promise<void> {
  let waiting = false;
  for (;;) {
    try {
      mkdirSync(lock.dir);
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      let age = 0;
      try {
        age = Date.now() - statSync(lock.dir).mtimeMs;
      } catch {
        continue; // released just now
      }
      if (age > lock.staleAfterMs) {
        rmSync(lock.dir, { recursive: true, force: true });
        continue;
      }
      if (!waiting) log(lock.waitingMessage);
      waiting = true;
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }
  try {
    install();
  } finally {
    rmSync(lock.dir, { recursive: true, force: true });
  }
}
