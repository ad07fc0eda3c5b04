import { evaluate, type PolicyStatement, wildcardMatch } from './iam-policy.ts';
import { permissionsFor, type RequiredPermission, type WireCall } from './iam-requests.ts';

/** Where the proxy takes IAM registrations and gives its report (never forwarded to the emulator). */
export const IAM_CONTROL_PATH = '/_stratoplane/iam/';
/** A request carrying this header expects to be refused (a test proving the check): not a finding. */
export const EXPECT_REFUSAL_HEADER = 'x-stratoplane-expect-refusal';

/** A caller of the local AWS with a key of its own: a function's role, a host agent's, an operator's. */
export interface PrincipalSpec {
  accessKeyId: string;
  /** How reports name it, e.g. `us-east-1 ApiPostVms`. */
  name: string;
  kind: 'function' | 'host-agent' | 'operator' | 'probe';
  region: string;
  /** The statements of its role, resolved to the local ARNs. */
  statements?: PolicyStatement[];
  /** Or a managed policy the region's runner registered, by logical id without CDK's hash (e.g. `HostAgentPolicy`). */
  managedPolicy?: string;
  principalTags?: Record<string, string>;
  /** The ARN AWS would name it by in an AccessDenied message. */
  arn?: string;
}

/** What a runner tells the check about its region: its principals, its managed policies, and which resources have customer managed keys. */
export interface Registration {
  principals?: PrincipalSpec[];
  managedPolicies?: { region: string; logicalId: string; statements: PolicyStatement[] }[];
  /** Tables, queues and buckets encrypted with a customer managed key: ARN → the key (id, ARN or alias) in `region`. */
  encryptedResources?: { arn: string; keyId: string; region: string }[];
}

/** Facts the check reads from the local AWS itself. */
export interface AwsLookups {
  /** A key by id, ARN or alias in `region`: its ARN and the names of its aliases. */
  kmsKey(region: string, keyId: string): Promise<{ arn: string; aliases: string[] } | undefined>;
  /** A queue's tags, by ARN. */
  queueTags(queueArn: string): Promise<Record<string, string>>;
}

export interface Refusal {
  principal: string;
  accessKeyId: string;
  /** `service Operation` as called. */
  call: string;
  action: string;
  resource: string;
  decision: 'implicit-deny' | 'explicit-deny' | 'unresolved';
  /** The caller said it expects this refusal (a test proving the check). */
  expected: boolean;
  count: number;
  first: string;
}

export interface Verdict {
  principal?: PrincipalSpec;
  refusals: Refusal[];
  /** Decrypt of a ciphertext that named no key: decided on the key the answer names. */
  deferred?: (answer: Record<string, unknown>) => Promise<Refusal[]>;
}

export interface IamReport {
  mode: IamMode;
  refused: Refusal[];
  /** Per principal that made calls: grants (statement action × resource) no call used. */
  unusedGrants: { principal: string; calls: number; unused: { action: string; resource: string }[] }[];
  /** Principals that made no call in this run (functions not invoked): their grants were not exercised. */
  idlePrincipals: string[];
  /** Calls by keys no principal was registered for (tests, the runner's own provisioning, the replicator). */
  unattributed: { accessKeyId: string; calls: number }[];
  errors: string[];
}

export type IamMode = 'enforce' | 'report' | 'off';

const LOCAL_ACCOUNT = '000000000000';
/** Grants to services the local AWS does not run: never exercised here, so never reported as unused. */
const notEmulated = /^(xray|logs|cloudwatch):/i;

/**
 * Evaluates each call against its caller's IAM policy as AWS would, and keeps what it found:
 * refusals, and for each principal the grants no call used. With `enforce`, the proxy answers
 * refused calls with AccessDenied; with `report` they go through and are only reported.
 */
export class IamCheck {
  private readonly principals = new Map<string, PrincipalSpec>();
  private readonly managedPolicies = new Map<string, PolicyStatement[]>();
  private readonly encrypted = new Map<string, { keyId: string; region: string }>();
  private readonly refusals = new Map<string, Refusal>();
  private readonly used = new Map<string, Set<string>>();
  private readonly calls = new Map<string, number>();
  private readonly unattributed = new Map<string, number>();
  private readonly iterators = new Map<string, string>();
  private readonly errors = new Set<string>();

  constructor(
    readonly mode: IamMode,
    private readonly lookups: AwsLookups,
  ) {}

  register(registration: Registration): void {
    for (const policy of registration.managedPolicies ?? []) this.managedPolicies.set(`${policy.region}/${policy.logicalId}`, policy.statements);
    for (const resource of registration.encryptedResources ?? []) this.encrypted.set(resource.arn, { keyId: resource.keyId, region: resource.region });
    for (const principal of registration.principals ?? []) this.principals.set(principal.accessKeyId, principal);
  }

  principalOf(accessKeyId: string): PrincipalSpec | undefined {
    return this.principals.get(accessKeyId);
  }

  /** Decides `call` for the holder of `accessKeyId`; unknown keys are counted and let through. */
  async authorize(accessKeyId: string, call: WireCall, options: { expectRefusal?: boolean } = {}): Promise<Verdict> {
    const principal = this.principals.get(accessKeyId);
    if (!principal || this.mode === 'off') {
      this.unattributed.set(accessKeyId, (this.unattributed.get(accessKeyId) ?? 0) + 1);
      return { refusals: [] };
    }
    this.calls.set(principal.name, (this.calls.get(principal.name) ?? 0) + 1);
    const callName = `${call.service} ${call.operation ?? ''}`.trim();
    const refusals: Refusal[] = [];
    let deferred: Verdict['deferred'];
    try {
      for (const permission of permissionsFor(call, (iterator) => this.iterators.get(iterator))) {
        if (permission.kmsKeyId === '') {
          // A ciphertext names its own key; the answer says which.
          deferred = async (answer) => {
            const keyId = typeof answer.KeyId === 'string' ? answer.KeyId : undefined;
            if (!keyId) return [];
            return this.decide(principal, callName, { ...permission, kmsKeyId: keyId, region: keyId.split(':')[3] }, call, options);
          };
          continue;
        }
        refusals.push(...(await this.decide(principal, callName, permission, call, options)));
      }
    } catch (error) {
      this.errors.add(`${principal.name} ${callName}: ${(error as Error).message}`);
    }
    return { principal, refusals, deferred };
  }

  /** What an answer tells: which stream a shard iterator reads. */
  observe(call: WireCall, answer: Record<string, unknown> | undefined): void {
    if (call.service !== 'dynamodbstreams' || !answer) return;
    // The stream the iterator was asked for; later iterators inherit it. Pollers of one shard at one
    // position get the same iterator string, so entries are not taken on use but aged out.
    const stream = call.operation === 'GetShardIterator' ? call.body?.StreamArn : this.iterators.get(String(call.body?.ShardIterator ?? ''));
    const next = (answer.ShardIterator ?? answer.NextShardIterator) as string | undefined;
    if (typeof stream !== 'string' || !next) return;
    this.iterators.set(next, stream);
    if (this.iterators.size > 50_000) this.iterators.delete(this.iterators.keys().next().value!);
  }

  report(): IamReport {
    const unusedGrants: IamReport['unusedGrants'] = [];
    const idlePrincipals: string[] = [];
    for (const principal of this.principals.values()) {
      if (principal.kind === 'probe') continue;
      const calls = this.calls.get(principal.name) ?? 0;
      if (calls === 0) {
        idlePrincipals.push(principal.name);
        continue;
      }
      const used = this.used.get(principal.name) ?? new Set();
      const unused: { action: string; resource: string }[] = [];
      for (const [index, statement] of this.statementsOf(principal).entries()) {
        if (statement.Effect !== 'Allow' || statement.Action === undefined) continue;
        for (const action of [statement.Action].flat()) {
          if (notEmulated.test(action) || used.has(`${index}|${action}`)) continue;
          unused.push({ action, resource: [statement.Resource ?? statement.NotResource ?? ''].flat().join(', ') });
        }
      }
      if (unused.length > 0) unusedGrants.push({ principal: principal.name, calls, unused });
    }
    return {
      mode: this.mode,
      refused: [...this.refusals.values()],
      unusedGrants: unusedGrants.sort((a, b) => a.principal.localeCompare(b.principal)),
      idlePrincipals: idlePrincipals.sort(),
      unattributed: [...this.unattributed].map(([accessKeyId, calls]) => ({ accessKeyId, calls })),
      errors: [...this.errors],
    };
  }

  private statementsOf(principal: PrincipalSpec): PolicyStatement[] {
    if (principal.statements) return principal.statements;
    if (!principal.managedPolicy) return [];
    for (const [key, statements] of this.managedPolicies) {
      const [region, logicalId] = key.split('/') as [string, string];
      if (region === principal.region && logicalId.replace(/[0-9A-F]{8}$/, '') === principal.managedPolicy) return statements;
    }
    throw new Error(`no managed policy ${principal.managedPolicy} registered in ${principal.region}`);
  }

  private async decide(
    principal: PrincipalSpec,
    callName: string,
    permission: RequiredPermission,
    call: WireCall,
    options: { expectRefusal?: boolean },
  ): Promise<Refusal[]> {
    const statements = this.statementsOf(principal);
    const region = permission.region ?? call.region;
    let resource = permission.resource;
    const context: Record<string, string | string[]> = { 'aws:CallerAccount': LOCAL_ACCOUNT, 'kms:CallerAccount': LOCAL_ACCOUNT, ...permission.context };
    if (permission.kmsKeyId !== undefined) {
      const key = await this.lookups.kmsKey(region, permission.kmsKeyId);
      // A key that does not exist: the local AWS answers NotFound, as AWS does to a caller allowed to ask.
      if (!key) return [];
      resource = key.arn;
      context['kms:ResourceAliases'] = key.aliases;
      const alias = /(?:^|:)(alias\/.+)$/.exec(permission.kmsKeyId)?.[1];
      if (alias) context['kms:RequestAlias'] = alias;
    }
    if (
      permission.action.startsWith('sqs:') &&
      resource.startsWith('arn:') &&
      statements.some((statement) => JSON.stringify(statement.Condition ?? {}).includes('aws:ResourceTag/'))
    ) {
      for (const [key, value] of Object.entries(await this.lookups.queueTags(resource))) context[`aws:ResourceTag/${key}`] = value;
    }
    if (!resource) return [this.refuse(principal, callName, permission.action, '(unknown resource)', 'unresolved', options)];
    const refusals: Refusal[] = [];
    const request = { action: permission.action, resource, context };
    const decision = evaluate(statements, request, principal);
    if (decision.decision === 'allow') this.markUsed(principal, statements, decision.statements, permission.action);
    else refusals.push(this.refuse(principal, callName, permission.action, resource, decision.decision, options));
    if (permission.kmsVia) refusals.push(...(await this.decideKmsVia(principal, callName, permission, resource, options)));
    return refusals;
  }

  /** The KMS actions a service takes with the caller's credentials on the resource's customer managed key. */
  private async decideKmsVia(
    principal: PrincipalSpec,
    callName: string,
    permission: RequiredPermission,
    resource: string,
    options: { expectRefusal?: boolean },
  ) {
    const owner = this.encryptionOf(resource);
    if (!owner) return [];
    const key = await this.lookups.kmsKey(owner.region, owner.keyId);
    if (!key) return [];
    const statements = this.statementsOf(principal);
    const refusals: Refusal[] = [];
    for (const action of permission.kmsVia!.actions) {
      const request = {
        action,
        resource: key.arn,
        context: {
          'kms:ViaService': `${permission.kmsVia!.service}.${owner.region}.amazonaws.com`,
          'kms:CallerAccount': LOCAL_ACCOUNT,
          'kms:ResourceAliases': key.aliases,
        },
      };
      const decision = evaluate(statements, request, principal);
      if (decision.decision === 'allow') this.markUsed(principal, statements, decision.statements, action);
      else
        refusals.push(
          this.refuse(principal, `${callName} (${permission.kmsVia!.service} uses ${resource}'s key)`, action, key.arn, decision.decision, options),
        );
    }
    return refusals;
  }

  /** The customer managed key of a table (or its index or stream), queue, bucket (or object), if it has one. */
  private encryptionOf(resource: string): { keyId: string; region: string } | undefined {
    const exact = this.encrypted.get(resource);
    if (exact) return exact;
    const table = /^(arn:[^:]+:dynamodb:[^:]*:[^:]*:table\/[^/]+)/.exec(resource)?.[1];
    if (table) return this.encrypted.get(table);
    const bucket = /^(arn:[^:]+:s3:::[^/]+)\//.exec(resource)?.[1];
    if (bucket) return this.encrypted.get(bucket);
    return undefined;
  }

  private markUsed(principal: PrincipalSpec, statements: PolicyStatement[], indexes: number[], action: string) {
    let used = this.used.get(principal.name);
    if (!used) {
      used = new Set();
      this.used.set(principal.name, used);
    }
    for (const index of indexes)
      for (const pattern of [statements[index]!.Action ?? []].flat()) if (wildcardMatch(pattern, action, true)) used.add(`${index}|${pattern}`);
  }

  private refuse(
    principal: PrincipalSpec,
    callName: string,
    action: string,
    resource: string,
    decision: Refusal['decision'],
    options: { expectRefusal?: boolean },
  ): Refusal {
    const expected = options.expectRefusal === true;
    const key = `${principal.name}|${callName}|${action}|${resource}|${expected}`;
    let refusal = this.refusals.get(key);
    if (!refusal) {
      refusal = {
        principal: principal.name,
        accessKeyId: principal.accessKeyId,
        call: callName,
        action,
        resource,
        decision,
        expected,
        count: 0,
        first: new Date().toISOString(),
      };
      this.refusals.set(key, refusal);
    }
    refusal.count++;
    return refusal;
  }
}
