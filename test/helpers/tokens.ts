import { KMSClient } from '@aws-sdk/client-kms';
import { deploymentFromEnvironment, keyAlias } from '#events/naming.ts';
import { scopesFor, type PrincipalKind, type Scope } from '#events/tokens.ts';
import { issueApiToken } from '#tokens/api-tokens.ts';
import { KmsJwsSigner } from '#tokens/kms-signer.ts';
import { tokenIssuerCredentials } from '../../local/aws/iam-principals.ts';
import { localAwsConfig } from './local-aws.ts';

let signer: Promise<KmsJwsSigner> | undefined;
const issued = new Map<string, Promise<string>>();

/** An API token from the local API token key, issued once per subject and scopes, as an operator would. */
export function tokenFor(kind: PrincipalKind, id: string, scopes: readonly Scope[] = scopesFor[kind]): Promise<string> {
  // Signed as an operator holding the stack's TokenIssuerPolicy, which the local IAM check holds it to.
  signer ??= tokenIssuerCredentials(localAwsConfig().endpoint, localAwsConfig().region).then(
    (credentials) => new KmsJwsSigner(new KMSClient({ ...localAwsConfig(), credentials }), keyAlias('api-tokens', deploymentFromEnvironment())),
  );
  const key = `${kind}:${id}:${scopes.join(' ')}`;
  let token = issued.get(key);
  if (!token) {
    token = signer.then((issuer) => issueApiToken(issuer, { subject: `${kind}:${id}`, scopes, ttlSeconds: 3600 })).then(({ token }) => token);
    issued.set(key, token);
  }
  return token;
}

/** The tenant every test acts as unless it says otherwise. */
export const tenantToken = (tenantId = 'test-tenant') => tokenFor('tenant', tenantId);
export const operatorToken = () => tokenFor('operator', 'test-operator');
