import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { findPython as findLocalAwsPython } from '../aws/toolchain.ts';
import { withInstallLock } from '../install-lock.ts';

/**
 * Installs Schemathesis from PyPI into the git-ignored .local-tools/schemathesis/ (a virtualenv),
 * as local/aws/install.ts installs LocalStack: pinned (requirements.txt, constraints.txt beside
 * this file), redone only when a pin changes, one installer at a time.
 */
export const SCHEMATHESIS_VERSION = '4.32.5';

const here = path.dirname(fileURLToPath(import.meta.url));
const projectRoot = path.resolve(here, '../..');
const installDir = path.join(projectRoot, '.local-tools', 'schemathesis');
const venv = path.join(installDir, 'venv');
/** The `st` command of the installed Schemathesis. */
export const schemathesisCommand = path.join(venv, 'bin', 'st');
const requirementsFile = path.join(here, 'requirements.txt');
const constraintsFile = path.join(here, 'constraints.txt');
const stampFile = path.join(installDir, 'installed.txt');
const logFile = path.join(installDir, 'install.log');
const lockDir = path.join(installDir, 'install.lock');

export class SchemathesisSetupError extends Error {}

const wanted = () =>
  `schemathesis ${SCHEMATHESIS_VERSION} ${createHash('sha256').update(readFileSync(requirementsFile)).update(readFileSync(constraintsFile)).digest('hex').slice(0, 16)}`;

const readOr = (file: string) => {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    return '';
  }
};

const isInstalled = () => readOr(stampFile) === wanted() && existsSync(schemathesisCommand);

/**
 * A Python 3.12+ that can make virtualenvs: the 3.13 the local AWS runs on (STRATOPLANE_PYTHON,
 * python3.13 on PATH or in pyenv: local/aws/toolchain.ts), else python3.12 or python3. Not 3.11:
 * its parser fails Hypothesis now and then ("AST constructor recursion depth mismatch"), which
 * stops Schemathesis on an operation. (Debian's system Python needs the python3-venv package to
 * make virtualenvs; .ci/run installs it.)
 */
function findPython(): string {
  const candidates: string[] = [];
  try {
    candidates.push(findLocalAwsPython());
  } catch {
    // None of 3.13: a newer python3 will do.
  }
  if (!process.env.STRATOPLANE_PYTHON) candidates.push('python3.12', 'python3');
  const reasons: string[] = [];
  for (const python of candidates) {
    const probe = spawnSync(python, ['-c', 'import sys, venv, ensurepip; assert sys.version_info >= (3, 12), sys.version.split()[0]'], {
      encoding: 'utf8',
      timeout: 30_000,
    });
    if (probe.status === 0) return python;
    reasons.push(`${python}: ${(probe.stderr || probe.error?.message || '').trim().split('\n').pop()}`);
  }
  throw new SchemathesisSetupError(
    `Schemathesis needs Python 3.12 or newer with venv and ensurepip, and none was found (${reasons.join('; ') || 'no python3.13, python3.12 or python3'}).\n` +
      'Install it: Debian/Ubuntu `apt-get install python3 python3-venv`; or point STRATOPLANE_PYTHON at one.',
  );
}

/** Installs Schemathesis unless the pinned version is already there; returns the `st` command. */
export async function ensureSchemathesisInstalled(log: (message: string) => void = console.error): Promise<string> {
  if (isInstalled()) return schemathesisCommand;
  mkdirSync(installDir, { recursive: true });
  await withInstallLock(
    { dir: lockDir, staleAfterMs: 10 * 60_000, waitingMessage: '[schemathesis] another process is installing Schemathesis; waiting for it' },
    log,
    () => {
      if (isInstalled()) return;
      const started = Date.now();
      log(
        `[schemathesis] installing Schemathesis ${SCHEMATHESIS_VERSION} into .local-tools/schemathesis/ (first run only; log: .local-tools/schemathesis/install.log)`,
      );
      const out = openSync(logFile, 'a');
      try {
        writeSync(out, `\n=== ${new Date().toISOString()} install\n`);
        const step = (description: string, command: string, args: string[]) => {
          writeSync(out, `\n--- ${description}: ${command} ${args.join(' ')}\n`);
          const result = spawnSync(command, args, { stdio: ['ignore', out, out], env: { ...process.env, PIP_DISABLE_PIP_VERSION_CHECK: '1' } });
          if (result.status !== 0) {
            const tail = readFileSync(logFile, 'utf8').trimEnd().split('\n').slice(-25).join('\n');
            throw new SchemathesisSetupError(
              `${description} failed (${result.error?.message ?? `exit ${result.status}`}); the end of .local-tools/schemathesis/install.log:\n${tail}`,
            );
          }
        };
        rmSync(stampFile, { force: true });
        step('creating the Python virtualenv', findPython(), ['-m', 'venv', '--clear', venv]);
        step('pip install schemathesis', path.join(venv, 'bin', 'python'), [
          '-m',
          'pip',
          'install',
          '--no-input',
          '-r',
          requirementsFile,
          '-c',
          constraintsFile,
        ]);
        writeFileSync(stampFile, `${wanted()}\n`);
        log(`[schemathesis] installed in ${((Date.now() - started) / 1000).toFixed(0)} s`);
      } finally {
        closeSync(out);
      }
    },
  );
  return schemathesisCommand;
}
