import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { operations, type Operation } from '#events/operations.ts';
import type { Scope } from '#events/tokens.ts';
import { ensureSchemathesisInstalled, SCHEMATHESIS_VERSION } from '../../local/schemathesis/install.ts';
import { projectRoot } from '../../local/processes.ts';
import { api, expectOk, uniqueId } from '../helpers/api.ts';
import { keepAlive } from '../helpers/heartbeats.ts';
import { operatorToken, tenantToken, tokenFor } from '../helpers/tokens.ts';

/**
 * Schemathesis, run as an outsider would: it reads the OpenAPI document the local API serves,
 * generates requests from it (valid ones, and ones the document says are invalid) and checks every
 * answer with all of its checks: no 5xx, only documented statuses, content types and bodies,
 * valid data accepted, invalid data refused, auth not ignored. Three callers: a tenant, an
 * operator and a host, each on the operations its scopes reach.
 *
 * Bounded for CI (two cores): a fixed seed, few examples per operation, two workers.
 * STRATOPLANE_SCHEMATHESIS_EXAMPLES raises the examples for a longer run by hand.
 */
const maxExamples = Number(process.env.STRATOPLANE_SCHEMATHESIS_EXAMPLES ?? 10);
const seed = Number(process.env.STRATOPLANE_SCHEMATHESIS_SEED ?? 20_261_202);
const workDir = path.join(projectRoot, '.local-run', `schemathesis-${process.pid}`);

/**
 * Operations left out of the positive (valid data) generation, with why. They still get the
 * negative cases (invalid data must be refused) in a run of their own.
 */
const negativeOnly: Record<string, string> = {
  registerHost:
    "every valid body registers a host with a generated address in the stack all test files share; placement would then put other files' VMs on hosts no agent runs",
  registerStoragePool: "every valid body registers a storage pool other files' disks would then be drawn from",
};

/**
 * Checks left out, with why. Every other check of Schemathesis runs ("--checks all").
 */
const excludedChecks: Record<string, string> = {
  unsupported_method:
    'API Gateway (REST) answers a method a resource does not have itself, before any function runs (403 Missing Authentication Token on AWS, 404 from the local runner): a 405 would take a mock method for every other verb on every resource',
};

/**
 * Failures accepted, by check, operation and message, with the reason: rules that depend on
 * stored state, on the caller's scope or on what a string encodes, which JSON Schema cannot say;
 * the description says each in words. Any other failure fails the test.
 */
const accepted: { check: string; operationIds: string[]; message: RegExp; reason: string }[] = [
  {
    check: 'positive_data_acceptance',
    operationIds: ['listNetworks', 'listVms', 'listServiceAccounts', 'listProjects', 'listImages', 'listDisks'],
    message: /nextToken: is not a token this API returned/,
    reason: 'nextToken is opaque: only a value the API returned for the list is accepted (its description says so)',
  },
  {
    check: 'positive_data_acceptance',
    operationIds: ['createDisk', 'modifyDisk'],
    message: /rule (iops-per-gib|throughput-per-iops|size-grows-only)/,
    reason:
      'the ratio rules tie numbers of one body together, and size-grows-only compares with the stored disk: stated in the operation and body descriptions',
  },
  {
    check: 'positive_data_acceptance',
    operationIds: ['completeImageUpload'],
    message: /body\.parts: (S3 refused them|give parts 1 to \d+, each once)/,
    reason: 'the parts must be every part of the upload, as uploaded with those ETags: stored state (the description says so)',
  },
  {
    check: 'positive_data_acceptance',
    operationIds: ['revokeToken'],
    message: /body\.token: (not a token|the token carries no id)/,
    reason: "a token's header and payload must be base64url JSON with jti: the pattern says the compact-JWS form, the description the rest",
  },
  {
    check: 'positive_data_acceptance',
    operationIds: ['publishHostKeys'],
    message: /body\.keys\.\d+: (key data is not|an ssh-ed25519 key is|must be an OpenSSH public key line)/,
    reason: 'the base64 blob must encode a public key of the named type in SSH wire format: the pattern says the line form, the description the rest',
  },
  {
    check: 'positive_data_acceptance',
    operationIds: ['listVms', 'createVm', 'createDisk', 'getQuotas'],
    message: /an operator (lists by hostId only|names the tenant it acts for)|hostId|tenantId/,
    reason:
      "with an operator token hostId (listing) or tenantId (creating VMs and disks, quotas) is required and networkId refused: the fields' descriptions say which scope each is for",
  },
  {
    check: 'positive_data_acceptance',
    operationIds: ['putEgressPolicy'],
    message: /body\.allow\.\d+: (IP literals are refused|localhost and \*\.localhost are refused|must be an origin)/,
    reason:
      'the pattern says the form of an origin; that the URL standard must serialize it unchanged (no default port), and that localhost names are refused, the description says',
  },
];

interface Context {
  name: string;
  token: Promise<string>;
  scopes: readonly Scope[];
  /** Path parameters fixed for the whole run (the host's own id, for its routes). */
  parameters?: Record<string, string>;
}

const operationsFor = (scopes: readonly Scope[]) =>
  Object.values<Operation>(operations).filter((operation) => operation.scopes.some((scope) => scopes.includes(scope)));

interface Failure {
  check: string;
  operation: string;
  operationId: string;
  message: string;
}

const byLabel = new Map(Object.values<Operation>(operations).map((operation) => [`${operation.method} ${operation.path}`, operation.operationId]));

const isAccepted = (failure: Failure) =>
  accepted.some((entry) => entry.check === failure.check && entry.operationIds.includes(failure.operationId) && entry.message.test(failure.message));

interface Run {
  exitCode: number | null;
  output: string;
  cases: number;
  failures: Failure[];
  errors: string[];
  seconds: number;
  /** Where its config, output and events are. */
  dir: string;
}

/** Runs `st run` on the served document with one caller's token; reads its failures from the NDJSON event stream. */
async function schemathesis(st: string, context: Context, selected: Operation[], mode: 'all' | 'negative'): Promise<Run> {
  const dir = path.join(workDir, `${context.name}-${mode}`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const configFile = path.join(dir, 'schemathesis.toml');
  // 431 (the URL or headers too large: a negative case's long query) is a refusal too.
  const config = [
    '[checks.negative_data_rejection]',
    'expected-statuses = ["400", "401", "403", "404", "405", "406", "409", "415", "422", "428", "429", "431", "5xx"]',
  ];
  if (context.parameters) config.push('[parameters]', ...Object.entries(context.parameters).map(([name, value]) => `"${name}" = ${JSON.stringify(value)}`));
  writeFileSync(configFile, `${config.join('\n')}\n`);
  const events = path.join(dir, 'events.ndjson');
  const ids = selected.map((operation) => operation.operationId).join('|');
  const args = [
    '--config-file',
    configFile,
    'run',
    `${inject('apiUrl')}/openapi.json`,
    '--header',
    `Authorization: Bearer ${await context.token}`,
    '--checks',
    'all',
    '--exclude-checks',
    Object.keys(excludedChecks).join(','),
    // API Gateway's integration timeout: an answer slower than that never reaches a client on AWS.
    '--max-response-time',
    '29',
    '--mode',
    mode,
    '--phases',
    'examples,coverage,fuzzing',
    '--max-examples',
    String(maxExamples),
    '--seed',
    String(seed),
    '--generation-database',
    'none',
    '--workers',
    '2',
    '--request-timeout',
    '30',
    '--continue-on-failure',
    '--include-operation-id-regex',
    `^(${ids})$`,
    '--report',
    'ndjson',
    '--report-ndjson-path',
    events,
    '--no-color',
  ];
  const started = Date.now();
  const child = spawn(st, args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, SCHEMATHESIS_HOOKS: '', NO_COLOR: '1' } });
  let output = '';
  child.stdout.on('data', (chunk) => (output += chunk));
  child.stderr.on('data', (chunk) => (output += chunk));
  const exitCode = await new Promise<number | null>((resolve) => child.on('close', resolve));
  const seconds = (Date.now() - started) / 1000;
  writeFileSync(path.join(dir, 'output.txt'), output);
  const { cases, failures, errors } = readEvents(events);
  return { exitCode, output, cases, failures, errors, seconds, dir };
}

/** The cases run, the failures found (each once) and Schemathesis' own errors, from its NDJSON events. */
function readEvents(file: string): { cases: number; failures: Failure[]; errors: string[] } {
  let text = '';
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return { cases: 0, failures: [], errors: [`no events in ${file}`] };
  }
  let cases = 0;
  const failures = new Map<string, Failure>();
  const errors: string[] = [];
  for (const line of text.split('\n').filter(Boolean)) {
    const event = JSON.parse(line) as Record<string, any>;
    if (event.NonFatalError) errors.push(`${event.NonFatalError.label}: ${event.NonFatalError.value?.type}: ${event.NonFatalError.value?.message}`);
    const scenario = event.ScenarioFinished;
    if (!scenario) continue;
    const recorder = scenario.recorder ?? {};
    cases += Object.keys(recorder.cases ?? {}).length;
    for (const [caseId, checks] of Object.entries<any[]>(recorder.checks ?? {})) {
      for (const check of checks) {
        if (check.status !== 'failure') continue;
        const failure = check.failure_info?.failure ?? {};
        const operation = String(failure.operation ?? recorder.label ?? '');
        const response = recorder.interactions?.[caseId]?.response;
        const body = response?.content?.$base64 ? Buffer.from(response.content.$base64, 'base64').toString('utf8') : String(response?.content ?? '');
        const message = `${failure.title ?? ''}: ${failure.message ?? ''} [${response?.status_code ?? '-'}] ${body.slice(0, 400)}`;
        const found: Failure = { check: check.name, operation, operationId: byLabel.get(operation) ?? operation, message: message.slice(0, 600) };
        failures.set(`${found.check} ${found.operation} ${found.message}`, found);
      }
    }
  }
  return { cases, failures: [...failures.values()], errors };
}

describe(`Schemathesis ${SCHEMATHESIS_VERSION} against the served OpenAPI description`, () => {
  let st = '';
  const hostId = uniqueId('schemathesis-host');
  const tenantId = uniqueId('schemathesis-tenant');
  const contexts: Context[] = [
    { name: 'tenant', token: tenantToken(tenantId), scopes: ['tenant:read', 'tenant:write'] },
    { name: 'operator', token: operatorToken(), scopes: ['operator'] },
    { name: 'host', token: tokenFor('host', hostId), scopes: ['host'], parameters: { 'path.hostId': hostId } },
  ];

  beforeAll(async () => {
    st = await ensureSchemathesisInstalled();
    // The host the host token names, so its routes reach the handlers' own checks rather than stop at "not your host".
    await expectOk(api('POST', '/hosts', { hostId, address: '198.51.100.240', capacity: 2 }, operatorToken()), 201);
    await keepAlive(hostId);
    // The fuzzed tenant's creates stay small: disks are drawn from the storage pools every file shares.
    await expectOk(api('PUT', `/quotas/${tenantId}`, { vms: 5, disks: 5, diskGiB: 64, networks: 20 }, operatorToken()));
  }, 300_000);

  it.each(contexts.map((context) => [context.name, context] as const))(
    'as the %s: every answer as described, no failure but the accepted ones',
    async (_, context) => {
      const reachable = operationsFor(context.scopes);
      const positive = reachable.filter((operation) => !negativeOnly[operation.operationId]);
      const negative = reachable.filter((operation) => negativeOnly[operation.operationId]);
      const runs = [await schemathesis(st, context, positive, 'all'), ...(negative.length > 0 ? [await schemathesis(st, context, negative, 'negative')] : [])];
      const cases = runs.reduce((sum, run) => sum + run.cases, 0);
      const failures = runs.flatMap((run) => run.failures);
      const unexpected = failures.filter((failure) => !isAccepted(failure));
      console.error(
        `[schemathesis] ${context.name}: ${reachable.length} operations, ${cases} cases in ${runs.map((run) => run.seconds.toFixed(0)).join(' + ')} s; ` +
          `${failures.length} failures, ${failures.length - unexpected.length} of them accepted (${[...new Set(failures.filter(isAccepted).map((failure) => failure.operationId))].join(', ') || 'none'})`,
      );
      for (const run of runs) {
        // Exit 1 is "failures found"; anything else is Schemathesis itself failing (the schema did not load, a bad option).
        if (run.exitCode !== 0 && run.exitCode !== 1) throw new Error(`st run exited ${run.exitCode}:\n${run.output.slice(-4000)}`);
        if (run.exitCode === 1 && run.failures.length === 0 && run.errors.length === 0)
          throw new Error(`st run failed with nothing in its events:\n${run.output.slice(-6000)}`);
      }
      expect(cases).toBeGreaterThan(0);
      expect(runs.flatMap((run) => run.errors)).toEqual([]);
      expect(unexpected).toEqual([]);
      // Kept when something failed: each run's output.txt and events.ndjson say what was sent and answered.
      for (const run of runs) rmSync(run.dir, { recursive: true, force: true });
    },
    900_000,
  );
});
