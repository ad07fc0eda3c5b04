import middy from '@middy/core';
import type { APIGatewayAuthorizerResult, APIGatewayTokenAuthorizerEvent } from 'aws-lambda';
import { KmsPublicKeys } from '#tokens/kms-public-keys.ts';
import { verifyApiToken } from '#tokens/api-tokens.ts';
import { TokenError } from '#tokens/jws.ts';
import { kms } from '../../platform/clients.ts';
import { setting } from '../../platform/env.ts';
import { logger } from '../../platform/logger.ts';
import { tableName } from '../../platform/table.ts';
import { isTokenRevoked } from '../token-revocations.ts';

// Fetched once per container; every later token verifies offline.
const publicKeys = new KmsPublicKeys(kms, setting('apiTokenKeyArns').split(','));

/**
 * API Gateway TOKEN authorizer. API Gateway caches the answer per token for every route (a
 * minute, so a revocation takes effect within one), so the policy allows the whole API and
 * carries who the caller is; each route checks its own scope.
 */
export const handler = middy<APIGatewayTokenAuthorizerEvent, APIGatewayAuthorizerResult>().handler(async (event) => {
  const token = /^Bearer ([A-Za-z0-9_.-]+)$/.exec(event.authorizationToken ?? '')?.[1];
  // API Gateway answers 401 exactly when an authorizer fails with "Unauthorized".
  if (!token) throw new Error('Unauthorized');
  try {
    // Signature and claims offline; then one read: has an operator revoked it?
    const principal = await verifyApiToken(token, publicKeys, Date.now(), (jti) => isTokenRevoked(tableName, jti));
    const sub = `${principal.kind}:${principal.id}`;
    return {
      principalId: sub,
      policyDocument: { Version: '2012-10-17', Statement: [{ Action: 'execute-api:Invoke', Effect: 'Allow', Resource: wholeApi(event.methodArn) }] },
      context: { sub, scope: principal.scopes.join(' ') },
    };
  } catch (error) {
    if (!(error instanceof TokenError)) throw error;
    logger.info('token refused', { reason: error.message });
    throw new Error('Unauthorized');
  }
});

/** `arn:aws:execute-api:region:account:api/stage/GET/vms/x` → `arn:aws:execute-api:region:account:api/stage/*`. */
function wholeApi(methodArn: string): string {
  const [apiArn, stage] = methodArn.split('/');
  return `${apiArn}/${stage}/*`;
}
