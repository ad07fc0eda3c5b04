import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { AgentInfo } from './local-stack.ts';
import { isAlive, projectRoot } from './processes.ts';

/**
 * What a running `npm start` tells the other commands of this checkout: where its API, local AWS
 * and control socket are. `npm run agent` asks the stack through that socket; scripts/bootstrap.mjs
 * gives operator commands (`issue-token`, `dead-letters`) `operatorEnv` when the environment names
 * no AWS. It holds no secret: local, throwaway credentials only.
 */
export interface StackState {
  /** The `npm start` process (local/stack.ts): the file counts only while it runs. */
  pid: number;
  startedAt: string;
  /** Every region's API, the first region's first. */
  apis: { region: string; apiUrl: string }[];
  awsEndpoint: string;
  /** The stack's control socket (local/stack-control.ts). */
  controlSocket: string;
  agents: AgentInfo[];
  operatorEnv: { AWS_ENDPOINT_URL: string; AWS_REGION: string; AWS_ACCESS_KEY_ID: string; AWS_SECRET_ACCESS_KEY: string };
}

export const stackStateFile = path.join(projectRoot, '.local-run', 'stack.json');

export function writeStackState(state: StackState, file = stackStateFile): void {
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, `${JSON.stringify(state, null, 2)}\n`);
}

/** The state of the `npm start` running in this checkout, if one runs. */
export function runningStack(file = stackStateFile): StackState | undefined {
  let state: StackState;
  try {
    state = JSON.parse(readFileSync(file, 'utf8')) as StackState;
  } catch {
    return undefined;
  }
  return Number.isInteger(state.pid) && isAlive(state.pid) ? state : undefined;
}

/** Removes the file if this process wrote it (a later `npm start` may have replaced it). */
export function removeStackState(file = stackStateFile): void {
  try {
    if ((JSON.parse(readFileSync(file, 'utf8')) as StackState).pid !== process.pid) return;
  } catch {
    return;
  }
  rmSync(file, { force: true });
}
