import type { LocalFunction } from './function-host.ts';
import { resourcesOfType, type CfnTemplate } from './template.ts';

/** A rule's `rate(...)` in milliseconds (EventBridge's units: minute(s), hour(s), day(s)). */
export function rateMs(expression: string): number {
  const match = /^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$/.exec(expression);
  if (!match) throw new Error(`schedule ${expression}: only rate(N minute|hour|day) schedules run locally`);
  const unit = { minute: 60_000, hour: 3_600_000, day: 86_400_000 }[match[2]!.replace(/s$/, '') as 'minute' | 'hour' | 'day'];
  return Number(match[1]) * unit;
}

interface RuleProperties {
  ScheduleExpression?: string;
  State?: string;
  Targets?: { Arn: { 'Fn::GetAtt'?: [string, string] } }[];
}

/**
 * EventBridge's scheduled rules, as the local runner's timers: each invokes its target functions
 * with a `Scheduled Event` at its rate, as EventBridge does (an invocation that fails is only
 * logged; the next comes at the next period).
 */
export function startSchedules(
  template: CfnTemplate,
  functions: ReadonlyMap<string, LocalFunction>,
  region: string,
  log: (line: string) => void,
): { stop(): void } {
  const timers = resourcesOfType(template, 'AWS::Events::Rule').flatMap(([id, resource]) => {
    const props = (resource.Properties ?? {}) as RuleProperties;
    if (!props.ScheduleExpression || props.State === 'DISABLED') return [];
    const every = rateMs(props.ScheduleExpression);
    const targets = (props.Targets ?? []).map((target) => {
      const functionId = target.Arn['Fn::GetAtt']?.[0];
      const fn = functionId ? functions.get(functionId) : undefined;
      if (!fn) throw new Error(`rule ${id} targets something other than a function the runner runs`);
      return fn;
    });
    const timer = setInterval(() => {
      const event = {
        version: '0',
        id: crypto.randomUUID(),
        'detail-type': 'Scheduled Event',
        source: 'aws.events',
        region,
        time: new Date().toISOString(),
        resources: [id],
        detail: {},
      };
      for (const fn of targets) fn.invoke(event).catch((error: Error) => log(`scheduled ${id} → ${fn.spec.functionName}: ${error.message}`));
    }, every);
    timer.unref();
    return [timer];
  });
  return { stop: () => timers.forEach(clearInterval) };
}
