import type { AwsCallTotal } from '../local/aws/aws-proxy.ts';
import type { LocalStack } from '../local/local-stack.ts';

/** How often each function of the first region's runner has been invoked so far, by logical id (`ApiPostVms`, `FanOut`, …). */
export async function functionInvocations(stack: LocalStack): Promise<Map<string, number>> {
  return new Map([...(await functionTimes(stack))].map(([name, { invocations }]) => [name, invocations]));
}

/** Each function's invocations so far and the time they ran in all (ms), by logical id. */
export async function functionTimes(stack: LocalStack): Promise<Map<string, { invocations: number; durationMs: number }>> {
  const functions = (await (await fetch(new URL('/_local/functions', stack.runner.apiUrl))).json()) as Record<
    string,
    { functionName: string; invocations: number; durationMs: number }
  >;
  // Stratoplane-us-east-1-ApiPostVms3F2A9C1B → ApiPostVms
  return new Map(
    Object.values(functions).map((fn) => [
      fn.functionName.slice(stack.runner.stackName.length + 1).replace(/[0-9A-F]{8}$/, ''),
      { invocations: fn.invocations, durationMs: fn.durationMs },
    ]),
  );
}

/** AWS calls so far, by `service action`, with the DynamoDB request units they were estimated to cost and the time they took (ms, summed). */
export function awsCallsByAction(totals: readonly AwsCallTotal[]): {
  calls: Map<string, number>;
  durationsMs: Map<string, number>;
  readUnits: number;
  writeUnits: number;
} {
  const calls = new Map<string, number>();
  const durationsMs = new Map<string, number>();
  let readUnits = 0;
  let writeUnits = 0;
  for (const total of totals) {
    const key = `${total.service} ${total.action}`;
    calls.set(key, (calls.get(key) ?? 0) + total.calls);
    durationsMs.set(key, (durationsMs.get(key) ?? 0) + total.durationMs);
    readUnits += total.readUnits;
    writeUnits += total.writeUnits;
  }
  return { calls, durationsMs, readUnits, writeUnits };
}

/** AWS calls so far by who made them and what they were (`caller\tservice action`), polls that found nothing and stream reads left out. */
export function awsCallsByCaller(totals: readonly AwsCallTotal[]): Map<string, number> {
  const calls = new Map<string, number>();
  for (const total of totals) {
    if (total.action.endsWith('(empty)') || total.service === 'dynamodbstreams') continue;
    const key = `${total.caller}\t${total.service} ${total.action}`;
    calls.set(key, (calls.get(key) ?? 0) + total.calls);
  }
  return calls;
}

/** What each count grew by between two readings, largest first; counts that did not grow are left out. */
export function growth(after: Map<string, number>, before: Map<string, number>): Map<string, number> {
  return new Map(
    [...after]
      .map(([key, count]) => [key, count - (before.get(key) ?? 0)] as const)
      .filter(([, count]) => count > 0)
      .sort((a, b) => b[1] - a[1]),
  );
}

/**
 * Waits until `calls` (counts of the calls that matter, by key) stays the same for `quietMs`: what
 * an operation set off (streams, fan-out, acknowledgements) is done. Throws after `timeoutMs`,
 * naming what kept it busy.
 */
export async function untilQuiet(calls: () => Map<string, number>, quietMs = 2000, timeoutMs = 5 * 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const first = calls();
  let last = JSON.stringify([...first]);
  let since = Date.now();
  while (Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 250));
    const now = JSON.stringify([...calls()]);
    if (now !== last) [last, since] = [now, Date.now()];
    else if (Date.now() - since >= quietMs) return;
  }
  const busy = [...growth(calls(), first)].map(([key, count]) => `${key} ${count}`).join(', ');
  throw new Error(`the control plane never went quiet for ${quietMs} ms in ${timeoutMs / 1000} s; it made: ${busy}`);
}
