#!/usr/bin/env node
// Entry point of the npm scripts: makes sure dependencies are installed (first run, or after
// package-lock.json changed), then hands over to the TypeScript command. Plain JavaScript on
// purpose: it runs before node_modules exists.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const [major] = process.versions.node.split('.').map(Number);
if (major < 20) {
  console.error(`Stratoplane needs Node.js 20 or newer; this is ${process.version}.`);
  process.exit(1);
}

const lock = path.join(root, 'package-lock.json');
const installedLock = path.join(root, 'node_modules', '.package-lock.json');
if (!existsSync(installedLock) || statSync(lock).mtimeMs > statSync(installedLock).mtimeMs) {
  console.error('[bootstrap] installing node modules (npm ci)');
  const result = spawnSync('npm', ['ci', '--no-audit', '--no-fund'], { cwd: root, stdio: 'inherit' });
  if (result.status !== 0) process.exit(result.status ?? 1);
}

const commands = {
  start: ['--import', 'tsx', 'local/stack.ts'],
  agent: ['--import', 'tsx', 'local/agent-command.ts'],
  test: [path.join('node_modules', 'vitest', 'vitest.mjs'), 'run'],
  typecheck: [path.join('node_modules', 'typescript', 'bin', 'tsc'), '--noEmit'],
  lint: [path.join('node_modules', '@biomejs', 'biome', 'bin', 'biome'), 'check', '.'],
  bench: ['--import', 'tsx', 'bench/run.ts'],
  'issue-token': ['--import', 'tsx', 'ops/issue-token.ts'],
  'bid-exchange-token': ['--import', 'tsx', 'ops/bid-exchange-token.ts'],
  'dead-letters': ['--import', 'tsx', 'ops/dead-letters.ts'],
  'cleanup-stack': ['--import', 'tsx', 'ops/cleanup-stack.ts'],
  'deploy:local': ['--import', 'tsx', 'local/deploy/deploy-local.ts'],
  'guest-image': ['--import', 'tsx', 'local/guest-image/main.ts'],
};
const [command, ...rest] = process.argv.slice(2);
if (!commands[command]) {
  console.error(`usage: bootstrap.mjs ${Object.keys(commands).join('|')} [args]`);
  process.exit(2);
}
const env = { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' };
// Operator commands need an AWS region, endpoint and credentials. With none of them in the
// environment and `npm start` running in this folder, they use its local AWS (and say so).
if (['issue-token', 'dead-letters'].includes(command) && !rest.some((arg) => arg === '--help' || arg === '-h')) {
  const stack = runningLocalStack();
  if (stack && !['AWS_ENDPOINT_URL', 'AWS_REGION', 'AWS_DEFAULT_REGION', 'AWS_PROFILE', 'AWS_ACCESS_KEY_ID'].some((name) => process.env[name])) {
    Object.assign(env, stack.operatorEnv);
    console.error(`[${command}] using the local AWS of npm start (pid ${stack.pid}): ${stack.operatorEnv.AWS_ENDPOINT_URL}, ${stack.operatorEnv.AWS_REGION}`);
  }
}
const child = spawn(process.execPath, [...commands[command], ...rest], { cwd: root, stdio: 'inherit', env });
// A supervisor (or `timeout`, or `kill`) signals this process only: pass it on, so the command
// stops what it started (the local AWS, runners, agents) instead of leaving them behind. npm passes
// SIGINT and SIGTERM to its script's process; `npm start` runs this with `exec` (package.json), as
// the /bin/sh in between would otherwise take them and end without passing them on.
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, () => child.kill(signal));
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 128 : 1)));

/** What a running `npm start` wrote in .local-run/stack.json (local/stack-state.ts), if it still runs. */
function runningLocalStack() {
  try {
    const state = JSON.parse(readFileSync(path.join(root, '.local-run', 'stack.json'), 'utf8'));
    process.kill(state.pid, 0);
    return state;
  } catch {
    return undefined;
  }
}
