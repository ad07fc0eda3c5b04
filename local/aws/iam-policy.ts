/**
 * A small IAM identity-policy evaluator: what the local run needs to decide, call by call, whether
 * AWS would let a principal do what it just did. It follows IAM's evaluation logic for one
 * principal's identity policies (no resource policies, boundaries or SCPs): an explicit Deny wins,
 * else any Allow, else the implicit deny. It covers Action/NotAction and Resource/NotResource
 * with `*` and `?` wildcards (actions without regard to case), `${aws:PrincipalTag/…}` policy
 * variables, and the string, ARN, Bool and Null condition operators with `ForAnyValue:`,
 * `ForAllValues:` and `…IfExists`. Anything else in a statement throws, so a policy this
 * evaluator cannot read is reported rather than guessed at.
 */

export type PolicyValue = string | string[];

export interface PolicyStatement {
  Sid?: string;
  Effect: 'Allow' | 'Deny';
  Action?: PolicyValue;
  NotAction?: PolicyValue;
  Resource?: PolicyValue;
  NotResource?: PolicyValue;
  Condition?: Record<string, Record<string, PolicyValue | boolean>>;
}

export interface AuthorizationRequest {
  /** `service:Action`, e.g. `dynamodb:PutItem`. */
  action: string;
  /** The resource's ARN, or `*` for actions that take none. */
  resource: string;
  /** Condition keys the request carries (`kms:ViaService`, `aws:ResourceTag/k`, …); multivalued keys as arrays. */
  context?: Record<string, string | string[] | undefined>;
}

export interface Principal {
  /** Tags of the principal, for `${aws:PrincipalTag/k}` and `aws:PrincipalTag/k`. */
  principalTags?: Record<string, string>;
}

export interface Decision {
  decision: 'allow' | 'explicit-deny' | 'implicit-deny';
  /** Indexes of the statements that matched (the Deny that decided, or every Allow that applied). */
  statements: number[];
}

const list = (value: PolicyValue | boolean | undefined): string[] => (value === undefined ? [] : [value].flat().map(String));

const compiled = new Map<string, RegExp>();

/** `*` any run of characters, `?` one character; everything else literal. */
export function wildcardMatch(pattern: string, value: string, ignoreCase = false): boolean {
  const key = `${ignoreCase ? 'i' : 's'}${pattern}`;
  let expression = compiled.get(key);
  if (!expression) {
    const source = pattern
      .replace(/[.+^${}()|[\]\\]/g, '\\$&')
      .replace(/\*/g, '.*')
      .replace(/\?/g, '.');
    expression = new RegExp(`^${source}$`, ignoreCase ? 'is' : 's');
    // Patterns come from policies and condition values: a few thousand at most, bounded all the same.
    if (compiled.size > 10_000) compiled.clear();
    compiled.set(key, expression);
  }
  return expression.test(value);
}

/**
 * Substitutes policy variables; undefined when one names a value the request lacks (IAM then
 * treats the element as not matching). `${*}`, `${?}` and `${$}` stand for the literal character.
 */
export function substituteVariables(text: string, principal: Principal, context: AuthorizationRequest['context'] = {}): string | undefined {
  if (!text.includes('${')) return text;
  let missing = false;
  const result = text.replace(/\$\{([^}]+)\}/g, (_, name: string) => {
    if (name === '*' || name === '?' || name === '$') return name;
    const tag = /^aws:PrincipalTag\/(.+)$/i.exec(name)?.[1];
    const value = tag !== undefined ? principal.principalTags?.[tag] : context[name];
    if (typeof value !== 'string') {
      missing = true;
      return '';
    }
    return value;
  });
  return missing ? undefined : result;
}

const actionMatches = (patterns: string[], action: string) => patterns.some((pattern) => wildcardMatch(pattern, action, true));

function resourceMatches(patterns: string[], request: AuthorizationRequest, principal: Principal): boolean {
  return patterns.some((pattern) => {
    if (pattern === '*') return true;
    const expanded = substituteVariables(pattern, principal, request.context);
    return expanded !== undefined && wildcardMatch(expanded, request.resource);
  });
}

function contextValue(key: string, request: AuthorizationRequest, principal: Principal): string[] | undefined {
  const tag = /^aws:PrincipalTag\/(.+)$/i.exec(key)?.[1];
  if (tag !== undefined) return principal.principalTags?.[tag] === undefined ? undefined : [principal.principalTags[tag]!];
  // Condition keys are case-insensitive; their values are not.
  const entry = Object.entries(request.context ?? {}).find(([name]) => name.toLowerCase() === key.toLowerCase());
  const value = entry?.[1];
  return value === undefined ? undefined : [value].flat();
}

type Comparator = (expected: string, actual: string) => boolean;

const comparators: Record<string, { compare: Comparator; negated: boolean }> = {
  StringEquals: { compare: (e, a) => e === a, negated: false },
  StringNotEquals: { compare: (e, a) => e === a, negated: true },
  StringEqualsIgnoreCase: { compare: (e, a) => e.toLowerCase() === a.toLowerCase(), negated: false },
  StringNotEqualsIgnoreCase: { compare: (e, a) => e.toLowerCase() === a.toLowerCase(), negated: true },
  StringLike: { compare: (e, a) => wildcardMatch(e, a), negated: false },
  StringNotLike: { compare: (e, a) => wildcardMatch(e, a), negated: true },
  ArnEquals: { compare: (e, a) => wildcardMatch(e, a), negated: false },
  ArnLike: { compare: (e, a) => wildcardMatch(e, a), negated: false },
  ArnNotEquals: { compare: (e, a) => wildcardMatch(e, a), negated: true },
  ArnNotLike: { compare: (e, a) => wildcardMatch(e, a), negated: true },
  Bool: { compare: (e, a) => e.toLowerCase() === a.toLowerCase(), negated: false },
};

/** Whether one condition operator's block holds (every key in it must). */
function operatorHolds(operatorName: string, entries: Record<string, PolicyValue | boolean>, request: AuthorizationRequest, principal: Principal): boolean {
  let operator = operatorName;
  let setQualifier: 'ForAnyValue' | 'ForAllValues' | undefined;
  const qualified = /^(ForAnyValue|ForAllValues):(.+)$/.exec(operator);
  if (qualified) {
    setQualifier = qualified[1] as 'ForAnyValue' | 'ForAllValues';
    operator = qualified[2]!;
  }
  const ifExists = operator.endsWith('IfExists');
  if (ifExists) operator = operator.slice(0, -'IfExists'.length);
  for (const [key, expectedValue] of Object.entries(entries)) {
    const actual = contextValue(key, request, principal);
    if (operator === 'Null') {
      const wantsAbsent = list(expectedValue).some((value) => value.toLowerCase() === 'true');
      if (wantsAbsent !== (actual === undefined || actual.length === 0)) return false;
      continue;
    }
    const comparator = comparators[operator];
    if (!comparator) throw new Error(`condition operator ${operatorName} is not one the local IAM check evaluates`);
    const expected = list(expectedValue)
      .map((value) => substituteVariables(value, principal, request.context))
      .filter((value): value is string => value !== undefined);
    if (actual === undefined || actual.length === 0) {
      // A missing key: IfExists and ForAllValues hold; negated operators hold; the rest fail.
      if (ifExists || setQualifier === 'ForAllValues' || (comparator.negated && setQualifier === undefined)) continue;
      return false;
    }
    const valueMatches = (value: string) => expected.some((candidate) => comparator.compare(candidate, value));
    let holds: boolean;
    if (setQualifier === 'ForAllValues') holds = actual.every((value) => (comparator.negated ? !valueMatches(value) : valueMatches(value)));
    else if (setQualifier === 'ForAnyValue') holds = actual.some((value) => (comparator.negated ? !valueMatches(value) : valueMatches(value)));
    else holds = comparator.negated ? !actual.some(valueMatches) : actual.some(valueMatches);
    if (!holds) return false;
  }
  return true;
}

/** Whether `statement` applies to `request` (its Effect aside). */
export function statementApplies(statement: PolicyStatement, request: AuthorizationRequest, principal: Principal = {}): boolean {
  if (statement.Action !== undefined && !actionMatches(list(statement.Action), request.action)) return false;
  if (statement.NotAction !== undefined && actionMatches(list(statement.NotAction), request.action)) return false;
  if (statement.Action === undefined && statement.NotAction === undefined) throw new Error('a statement without Action or NotAction');
  if (statement.Resource !== undefined && !resourceMatches(list(statement.Resource), request, principal)) return false;
  if (statement.NotResource !== undefined && resourceMatches(list(statement.NotResource), request, principal)) return false;
  if (statement.Resource === undefined && statement.NotResource === undefined) throw new Error('a statement without Resource or NotResource');
  for (const [operator, entries] of Object.entries(statement.Condition ?? {})) if (!operatorHolds(operator, entries, request, principal)) return false;
  return true;
}

/** IAM's answer for one principal's identity policies: explicit Deny, else Allow, else implicit deny. */
export function evaluate(statements: readonly PolicyStatement[], request: AuthorizationRequest, principal: Principal = {}): Decision {
  const allows: number[] = [];
  for (const [index, statement] of statements.entries()) {
    if (!statementApplies(statement, request, principal)) continue;
    if (statement.Effect === 'Deny') return { decision: 'explicit-deny', statements: [index] };
    allows.push(index);
  }
  return allows.length > 0 ? { decision: 'allow', statements: allows } : { decision: 'implicit-deny', statements: [] };
}
