import { readdirSync, readFileSync } from 'node:fs';
import { setPriority } from 'node:os';

/** Every thread of `pid` and of the processes under it, as /proc lists them now. */
function threadsUnder(pid: number): number[] {
  let tasks: string[];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return [];
  }
  return tasks.flatMap((task) => {
    let children: number[] = [];
    try {
      children = readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
    } catch {
      // The thread ended meanwhile.
    }
    return [Number(task), ...children.flatMap(threadsUnder)];
  });
}

/**
 * Gives the processes under `pids`, every thread of them, the nice value `nice` (threads and
 * processes they start later inherit it). Returns how many threads it set.
 */
export function deprioritize(pids: readonly number[], nice: number): number {
  let set = 0;
  for (const thread of new Set(pids.flatMap(threadsUnder))) {
    try {
      // On Linux a thread id names that thread alone to setpriority(2).
      setPriority(thread, nice);
      set++;
    } catch {
      // Gone meanwhile.
    }
  }
  return set;
}
