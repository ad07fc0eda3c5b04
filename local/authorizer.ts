import { FunctionError, type LocalFunction } from './function-host.ts';

export interface AuthorizerSpec {
  logicalId: string;
  functionLogicalId: string;
  type: 'TOKEN' | 'REQUEST';
  /** Header named by `method.request.header.X`. */
  identityHeader: string;
  validation?: RegExp;
  ttlSeconds: number;
}

export type AuthorizerDecision =
  | { allowed: true; principalId: string; context: Record<string, unknown> }
  | { allowed: false; status: number; message: string | null };

interface PolicyStatement {
  Effect: 'Allow' | 'Deny';
  Action: string | string[];
  Resource: string | string[];
}

interface AuthorizerResult {
  principalId?: string;
  policyDocument?: { Statement?: PolicyStatement[] };
  context?: Record<string, unknown>;
}

/**
 * A Lambda TOKEN authorizer as API Gateway runs it: missing or malformed identity is a 401
 * without calling the function; "Unauthorized" from the function is a 401; any other failure a
 * 500; the returned policy is evaluated against the method ARN (explicit Deny wins, no Allow is a
 * 403); results are cached per token for the authorizer's TTL, policy included.
 */
export class LocalAuthorizer {
  private readonly cache = new Map<string, { expires: number; result: AuthorizerResult }>();

  constructor(
    private readonly spec: AuthorizerSpec,
    private readonly fn: LocalFunction,
    private readonly log: (message: string) => void,
  ) {}

  async authorize(headers: Record<string, string | string[] | undefined>, methodArn: string): Promise<AuthorizerDecision> {
    if (this.spec.type !== 'TOKEN') return { allowed: false, status: 500, message: 'REQUEST authorizers are not emulated locally' };
    const raw = headers[this.spec.identityHeader.toLowerCase()];
    const token = Array.isArray(raw) ? raw[0] : raw;
    if (!token || (this.spec.validation && !this.spec.validation.test(token))) return unauthorized;

    let result = this.cached(token);
    if (!result) {
      try {
        result = await this.fn.invoke<AuthorizerResult>({ type: 'TOKEN', authorizationToken: token, methodArn });
      } catch (error) {
        if (error instanceof FunctionError && error.errorMessage === 'Unauthorized') return unauthorized;
        this.log(`authorizer ${this.spec.logicalId}: ${(error as Error).message}`);
        // What API Gateway answers when an authorizer fails otherwise (AuthorizerConfigurationException).
        return { allowed: false, status: 500, message: null };
      }
      if (this.spec.ttlSeconds > 0) this.cache.set(token, { expires: Date.now() + this.spec.ttlSeconds * 1000, result });
    }
    const effect = evaluate(result?.policyDocument?.Statement ?? [], methodArn);
    if (effect === 'Deny') return { allowed: false, status: 403, message: 'User is not authorized to access this resource with an explicit deny' };
    if (effect !== 'Allow' || !result.principalId) return { allowed: false, status: 403, message: 'User is not authorized to access this resource' };
    return { allowed: true, principalId: result.principalId, context: result.context ?? {} };
  }

  private cached(token: string): AuthorizerResult | undefined {
    const entry = this.cache.get(token);
    if (entry && entry.expires > Date.now()) return entry.result;
    this.cache.delete(token);
    return undefined;
  }
}

const unauthorized: AuthorizerDecision = { allowed: false, status: 401, message: 'Unauthorized' };

function evaluate(statements: PolicyStatement[], methodArn: string): 'Allow' | 'Deny' | undefined {
  const matching = statements.filter(
    (statement) =>
      list(statement.Action).some((action) => matches(action, 'execute-api:Invoke')) &&
      list(statement.Resource).some((resource) => matches(resource, methodArn)),
  );
  if (matching.some((statement) => statement.Effect === 'Deny')) return 'Deny';
  return matching.some((statement) => statement.Effect === 'Allow') ? 'Allow' : undefined;
}

const list = (value: string | string[]) => (Array.isArray(value) ? value : [value]);

/** IAM wildcards: `*` any run of characters, `?` one. */
function matches(pattern: string, value: string): boolean {
  const regex = pattern
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${regex}$`).test(value);
}
