import { Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../cdk/app-builder.ts';
import { HOST_ID_PRINCIPAL_TAG, SHUFFLE_HOSTS_TAG_KEYS, shuffleHostsTags } from '#events/host-access.ts';

/*
 * Evaluates the synthesized HostAgentPolicy the way IAM does for the parts it uses (actions,
 * ARN patterns with * and ?, ${aws:PrincipalTag/…} in Resource and Condition, StringEquals and
 * StringLike on aws:ResourceTag/…), so the test asks what a host may do, not what the JSON says.
 */

type Json = any;
interface Request {
  principalTags: Record<string, string>;
  action: string;
  resource: string;
  resourceTags?: Record<string, string>;
}

const ACCOUNT = '123456789012';
const REGION = 'us-east-1';

/** CloudFormation values as deployed: Fn::Join and the pseudo parameters. */
function resolve(value: Json): string {
  if (typeof value === 'string') return value;
  if (value?.['Fn::Join']) return (value['Fn::Join'][1] as Json[]).map(resolve).join(value['Fn::Join'][0]);
  if (value?.Ref === 'AWS::Partition') return 'aws';
  if (value?.Ref === 'AWS::AccountId') return ACCOUNT;
  if (value?.Ref === 'AWS::Region') return REGION;
  if (value?.Ref) return `<${value.Ref}>`;
  if (value?.['Fn::GetAtt']) return `<${value['Fn::GetAtt'].join('.')}>`;
  throw new Error(`cannot resolve ${JSON.stringify(value)}`);
}

/** Replaces ${aws:PrincipalTag/K}; undefined when the principal has no such tag (the statement then does not apply). */
function substitute(text: string, principalTags: Record<string, string>): string | undefined {
  let missing = false;
  const result = text.replace(/\$\{aws:PrincipalTag\/([^}]+)\}/g, (_, key: string) => {
    const tag = principalTags[key];
    if (tag === undefined) missing = true;
    return tag ?? '';
  });
  if (/\$\{/.test(result)) throw new Error(`unsupported policy variable in ${text}`);
  return missing ? undefined : result;
}

const glob = (pattern: string, value: string) =>
  new RegExp(
    `^${pattern
      .replace(/[.+^${}()|[\]\\]/g, '\\$&')
      .replace(/\*/g, '.*')
      .replace(/\?/g, '.')}$`,
  ).test(value);

function conditionHolds(condition: Json, request: Request): boolean {
  for (const [operator, entries] of Object.entries(condition ?? {})) {
    for (const [key, expected] of Object.entries(entries as Record<string, Json>)) {
      const tag = key.match(/^aws:ResourceTag\/(.+)$/)?.[1];
      // Anything else this policy uses (the pair key's encryption context) is not asked of queues.
      const actual = tag !== undefined ? request.resourceTags?.[tag] : undefined;
      if (actual === undefined) return false;
      const candidates = [expected].flat().map((value: Json) => substitute(resolve(value), request.principalTags));
      const match =
        operator === 'StringEquals' ? (value: string) => value === actual : operator === 'StringLike' ? (value: string) => glob(value, actual) : undefined;
      if (!match) throw new Error(`unsupported condition operator ${operator}`);
      if (!candidates.some((value) => value !== undefined && match(value))) return false;
    }
  }
  return true;
}

function applies(statement: Json, request: Request): boolean {
  if (![statement.Action].flat().some((action: string) => glob(action, request.action))) return false;
  const resources = [statement.Resource].flat().map((resource: Json) => substitute(resolve(resource), request.principalTags));
  if (!resources.some((resource) => resource !== undefined && glob(resource, request.resource))) return false;
  return conditionHolds(statement.Condition, request);
}

function allowed(statements: Json[], request: Request): boolean {
  if (statements.some((statement) => statement.Effect === 'Deny' && applies(statement, request))) return false;
  return statements.some((statement) => statement.Effect === 'Allow' && applies(statement, request));
}

const asHost = (hostId: string) => ({ [HOST_ID_PRINCIPAL_TAG]: hostId });
const hostQueue = (hostId: string) => `arn:aws:sqs:${REGION}:${ACCOUNT}:Stratoplane-${REGION}-host-${hostId}`;
const shuffleQueue = `arn:aws:sqs:${REGION}:${ACCOUNT}:Stratoplane-${REGION}-shuffle-shuf-0123456789ab-vm-0123456789ab`;
const HOST_QUEUE_ACTIONS = ['sqs:ReceiveMessage', 'sqs:DeleteMessage', 'sqs:ChangeMessageVisibility', 'sqs:GetQueueUrl'];
const SHUFFLE_ACTIONS = ['sqs:SendMessage', ...HOST_QUEUE_ACTIONS];

describe('HostAgentPolicy: each host its own queues', () => {
  let statements: Json[];

  beforeAll(() => {
    const { stacks } = buildApp({ context: { regions: REGION, 'aws:cdk:bundling-stacks': [] } });
    const resources = Template.fromStack(stacks.get(REGION)!).toJSON().Resources as Record<string, Json>;
    const [, policy] = Object.entries(resources).find(([id, r]) => r.Type === 'AWS::IAM::ManagedPolicy' && id.startsWith('HostAgentPolicy'))!;
    statements = policy.Properties.PolicyDocument.Statement;
  }, 120_000); // synthesis takes seconds, more on a busy machine

  it("lets host A read its own host queue and never host B's, nor one whose name only starts with A's id", () => {
    for (const action of HOST_QUEUE_ACTIONS) {
      expect(allowed(statements, { principalTags: asHost('host-a'), action, resource: hostQueue('host-a') })).toBe(true);
      expect(allowed(statements, { principalTags: asHost('host-a'), action, resource: hostQueue('host-b') })).toBe(false);
      expect(allowed(statements, { principalTags: asHost('host-b'), action, resource: hostQueue('host-a') })).toBe(false);
      expect(allowed(statements, { principalTags: asHost('host-a'), action, resource: hostQueue('host-a2') })).toBe(false);
    }
    // Nobody writes to a host queue but the fan-out function.
    expect(allowed(statements, { principalTags: asHost('host-a'), action: 'sqs:SendMessage', resource: hostQueue('host-a') })).toBe(false);
  });

  it('gives a role session without the host-id principal tag no queue at all', () => {
    for (const action of SHUFFLE_ACTIONS) {
      expect(allowed(statements, { principalTags: {}, action, resource: hostQueue('host-a') })).toBe(false);
      expect(allowed(statements, { principalTags: { other: 'host-a' }, action, resource: shuffleQueue, resourceTags: shuffleHostsTags(['host-a'])! })).toBe(
        false,
      );
    }
  });

  it("lets only a shuffle job's hosts send to and read its queues", () => {
    const resourceTags = shuffleHostsTags(['host-a', 'host-c'])!;
    for (const action of SHUFFLE_ACTIONS) {
      expect(allowed(statements, { principalTags: asHost('host-a'), action, resource: shuffleQueue, resourceTags })).toBe(true);
      expect(allowed(statements, { principalTags: asHost('host-c'), action, resource: shuffleQueue, resourceTags })).toBe(true);
      expect(allowed(statements, { principalTags: asHost('host-b'), action, resource: shuffleQueue, resourceTags })).toBe(false);
      // Whole ids only: host-c is not host-c1, host-a is not a prefix match of another.
      expect(allowed(statements, { principalTags: asHost('host-c1'), action, resource: shuffleQueue, resourceTags })).toBe(false);
      expect(allowed(statements, { principalTags: asHost('host'), action, resource: shuffleQueue, resourceTags })).toBe(false);
      // An untagged queue (made before this policy, or by hand) is no host's.
      expect(allowed(statements, { principalTags: asHost('host-a'), action, resource: shuffleQueue, resourceTags: {} })).toBe(false);
    }
    // A job-hosts tag on a host queue does not open it to another host.
    expect(
      allowed(statements, {
        principalTags: asHost('host-b'),
        action: 'sqs:ReceiveMessage',
        resource: hostQueue('host-a'),
        resourceTags: shuffleHostsTags(['host-b'])!,
      }),
    ).toBe(false);
  });

  it('names every host of a large job, across as many tag keys as it takes, and each one only', () => {
    const hosts = Array.from({ length: 40 }, (_, index) => `rack-${String(index).padStart(2, '0')}-host-${'x'.repeat(8)}`);
    const resourceTags = shuffleHostsTags(hosts)!;
    expect(Object.keys(resourceTags).length).toBeGreaterThan(1);
    for (const value of Object.values(resourceTags)) expect(value.length).toBeLessThanOrEqual(256);
    for (const hostId of hosts)
      expect(allowed(statements, { principalTags: asHost(hostId), action: 'sqs:SendMessage', resource: shuffleQueue, resourceTags })).toBe(true);
    expect(allowed(statements, { principalTags: asHost('rack-99-host-xxxxxxxx'), action: 'sqs:SendMessage', resource: shuffleQueue, resourceTags })).toBe(
      false,
    );
    // More hosts than the tags can name: the job is refused rather than its queues left open.
    expect(shuffleHostsTags(Array.from({ length: 64 }, (_, index) => `${'h'.repeat(60)}${String(index).padStart(2, '0')}`))).toBeUndefined();
    expect(Object.keys(shuffleHostsTags(['a'])!)).toEqual([SHUFFLE_HOSTS_TAG_KEYS[0]]);
  });
});
