import { createHash } from 'node:crypto';
import type { PolicyStatement } from './iam-policy.ts';
import { IAM_CONTROL_PATH, type PrincipalSpec, type Registration } from './iam-check.ts';
import { resourcesOfType, type CfnResource, type CfnTemplate, type Resolver } from '../template.ts';

/**
 * The local access key id of a principal, derived from its name. `AKIA` keys of 20 characters are
 * what LocalStack maps to its default account (000000000000), as it does `test`; a 12-digit key
 * would be taken as an account id, and `LSIA`/`LKIA` keys carry an account id of their own.
 */
export function localAccessKeyId(name: string): string {
  const digest = createHash('sha256').update(name).digest();
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let key = 'AKIA';
  for (let index = 0; key.length < 20; index++) key += alphabet[digest[index]! % 32];
  return key;
}

/** The environment that makes an AWS SDK sign as `name`. */
export function credentialsEnv(name: string): { AWS_ACCESS_KEY_ID: string; AWS_SECRET_ACCESS_KEY: string } {
  return { AWS_ACCESS_KEY_ID: localAccessKeyId(name), AWS_SECRET_ACCESS_KEY: 'local-secret-not-checked' };
}

export const functionPrincipalName = (region: string, logicalId: string) => `function/${region}/${logicalId}`;
export const hostAgentPrincipalName = (region: string, hostId: string) => `host-agent/${region}/${hostId}`;
export const tokenIssuerPrincipalName = (region: string) => `operator/${region}/token-issuer`;

type Statement = Record<string, unknown>;

const statementsOf = (document: unknown): Statement[] =>
  [((document as { Statement?: unknown } | undefined)?.Statement ?? []) as Statement | Statement[]].flat();
const refersTo = (list: unknown, logicalId: string) => Array.isArray(list) && list.some((item) => (item as { Ref?: string })?.Ref === logicalId);

/** Every statement the template gives a role: its inline policies, the policies attached to it, its managed policies from the template. */
export function roleStatements(template: CfnTemplate, roleId: string): Statement[] {
  const role = template.Resources[roleId];
  if (!role) throw new Error(`role ${roleId} is not in the template`);
  const statements: Statement[] = [];
  for (const policy of (role.Properties?.Policies ?? []) as { PolicyDocument?: unknown }[]) statements.push(...statementsOf(policy.PolicyDocument));
  for (const managed of (role.Properties?.ManagedPolicyArns ?? []) as { Ref?: string }[]) {
    const policy = managed?.Ref ? template.Resources[managed.Ref] : undefined;
    if (policy?.Type === 'AWS::IAM::ManagedPolicy') statements.push(...statementsOf(policy.Properties?.PolicyDocument));
    // AWS managed policies (AWSLambdaBasicExecutionRole) grant CloudWatch Logs only, which the local AWS does not run.
  }
  for (const [, resource] of Object.entries(template.Resources)) {
    if ((resource.Type === 'AWS::IAM::Policy' || resource.Type === 'AWS::IAM::ManagedPolicy') && refersTo(resource.Properties?.Roles, roleId))
      statements.push(...statementsOf(resource.Properties?.PolicyDocument));
  }
  return statements;
}

/** The role a function runs as: the logical id its `Role` names. */
export function roleOf(fn: CfnResource): string {
  const role = fn.Properties?.Role as { 'Fn::GetAtt'?: [string, string] } | undefined;
  const id = role?.['Fn::GetAtt']?.[0];
  if (!id) throw new Error(`a function's role is not a GetAtt of the template's: ${JSON.stringify(role)}`);
  return id;
}

/**
 * What a region's runner registers: a principal per function (its role's statements, resolved to
 * the ARNs made locally), the template's managed policies (host agents are checked against
 * theirs), and the resources with a customer managed key.
 */
export function registrationFor(template: CfnTemplate, resolver: Resolver, functionIds: Iterable<string>): Registration {
  const region = resolver.pseudo.region;
  const resolve = (statements: Statement[]) => resolver.resolve(statements) as PolicyStatement[];
  const principals: PrincipalSpec[] = [...functionIds].map((id) => {
    const roleId = roleOf(template.Resources[id]!);
    const name = functionPrincipalName(region, id);
    return {
      accessKeyId: localAccessKeyId(name),
      name,
      kind: 'function',
      region,
      statements: resolve(roleStatements(template, roleId)),
      arn: `arn:aws:sts::${resolver.pseudo.accountId}:assumed-role/${resolver.pseudo.stackName}-${roleId}/${resolver.pseudo.stackName}-${id}`,
    };
  });
  const managedPolicies = resourcesOfType(template, 'AWS::IAM::ManagedPolicy').map(([logicalId, policy]) => ({
    region,
    logicalId,
    statements: resolve(statementsOf(policy.Properties?.PolicyDocument)),
  }));
  const encryptedResources: NonNullable<Registration['encryptedResources']> = [];
  const add = (arn: unknown, keyId: unknown) => {
    if (keyId !== undefined && keyId !== null) encryptedResources.push({ arn: resolver.resolveString(arn), keyId: resolver.resolveString(keyId), region });
  };
  for (const type of ['AWS::DynamoDB::Table', 'AWS::DynamoDB::GlobalTable'])
    for (const [id, table] of resourcesOfType(template, type)) {
      const sse = table.Properties?.SSESpecification as { KMSMasterKeyId?: unknown } | undefined;
      add({ 'Fn::GetAtt': [id, 'Arn'] }, sse?.KMSMasterKeyId);
    }
  for (const [id, queue] of resourcesOfType(template, 'AWS::SQS::Queue')) add({ 'Fn::GetAtt': [id, 'Arn'] }, queue.Properties?.KmsMasterKeyId);
  for (const [id, bucket] of resourcesOfType(template, 'AWS::S3::Bucket')) {
    const rules = ((bucket.Properties?.BucketEncryption as { ServerSideEncryptionConfiguration?: unknown[] } | undefined)?.ServerSideEncryptionConfiguration ??
      []) as { ServerSideEncryptionByDefault?: { SSEAlgorithm?: string; KMSMasterKeyID?: unknown } }[];
    const kms = rules.find((rule) => rule.ServerSideEncryptionByDefault?.SSEAlgorithm?.startsWith('aws:kms'));
    add({ 'Fn::GetAtt': [id, 'Arn'] }, kms?.ServerSideEncryptionByDefault?.KMSMasterKeyID);
  }
  return { principals, managedPolicies, encryptedResources };
}

/** A host agent's principal: the region's HostAgentPolicy, in a session tagged with its host id. */
export function hostAgentPrincipal(region: string, hostId: string): PrincipalSpec {
  const name = hostAgentPrincipalName(region, hostId);
  return {
    accessKeyId: localAccessKeyId(name),
    name,
    kind: 'host-agent',
    region,
    managedPolicy: 'HostAgentPolicy',
    principalTags: { 'stratoplane:host-id': hostId },
    arn: `arn:aws:sts::000000000000:assumed-role/StratoplaneHost/${hostId}`,
  };
}

/** An operator who issues API tokens (`npm run issue-token`): the region's TokenIssuerPolicy. */
export function tokenIssuerPrincipal(region: string): PrincipalSpec {
  const name = tokenIssuerPrincipalName(region);
  return { accessKeyId: localAccessKeyId(name), name, kind: 'operator', region, managedPolicy: 'TokenIssuerPolicy' };
}

/**
 * Tells the proxy in front of the local AWS who signs with which key. False when there is none
 * (an emulator of one's own, through AWS_ENDPOINT_URL): nothing is checked then.
 */
export async function registerPrincipals(endpoint: string, registration: Registration): Promise<boolean> {
  try {
    const response = await fetch(new URL(`${IAM_CONTROL_PATH}register`, endpoint), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(registration),
      signal: AbortSignal.timeout(10_000),
    });
    return response.status === 204;
  } catch {
    return false;
  }
}

/** Registers a host agent with the proxy and gives the environment it signs with. */
export async function hostAgentCredentials(
  endpoint: string,
  region: string,
  hostId: string,
): Promise<{ AWS_ACCESS_KEY_ID: string; AWS_SECRET_ACCESS_KEY: string }> {
  await registerPrincipals(endpoint, { principals: [hostAgentPrincipal(region, hostId)] });
  return credentialsEnv(hostAgentPrincipalName(region, hostId));
}

/** Registers a token-issuing operator with the proxy and gives the credentials it signs with. */
export async function tokenIssuerCredentials(endpoint: string, region: string): Promise<{ accessKeyId: string; secretAccessKey: string }> {
  await registerPrincipals(endpoint, { principals: [tokenIssuerPrincipal(region)] });
  const { AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY } = credentialsEnv(tokenIssuerPrincipalName(region));
  return { accessKeyId: AWS_ACCESS_KEY_ID, secretAccessKey: AWS_SECRET_ACCESS_KEY };
}
