import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { isAlive } from './processes.ts';

/**
 * One integration run (or bench with real guests) at a time on a machine: two would each start an emulator and a runner and
 * starve each other past every readiness limit (two cores), and both would want LocalStack's port.
 * A later run waits for the earlier, also one from another checkout (the lock is the machine's).
 */
const runLock = path.join(os.tmpdir(), 'stratoplane-integration-run.lock');

export async function takeRunLock(): Promise<void> {
  mkdirSync(path.dirname(runLock), { recursive: true });
  let told = false;
  for (;;) {
    try {
      mkdirSync(runLock);
      writeFileSync(path.join(runLock, 'pid'), String(process.pid));
      process.once('exit', releaseRunLock);
      return;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const holder = Number(readFileOr(path.join(runLock, 'pid')));
    if (!holder || !isAlive(holder)) {
      rmSync(runLock, { recursive: true, force: true });
      continue;
    }
    if (!told) console.error(`waiting for another integration run (pid ${holder}) to finish`);
    told = true;
    await new Promise((resolve) => setTimeout(resolve, 1_000));
  }
}

export function releaseRunLock(): void {
  if (readFileOr(path.join(runLock, 'pid')) === String(process.pid)) rmSync(runLock, { recursive: true, force: true });
}

function readFileOr(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}
