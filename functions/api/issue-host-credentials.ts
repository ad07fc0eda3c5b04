import { operations } from '#events/operations.ts';
import { KmsJwsSigner } from '#tokens/kms-signer.ts';
import { kms } from '../commons/clients.ts';
import { requiredEnv } from '../commons/env.ts';
import { apiHandler } from '../commons/http.ts';
import { tableName } from '../commons/table.ts';
import { assertActsForHost } from '../domain/access.ts';
import { issueCredentialsForHost } from '../domain/host-credentials.ts';

const credentials = new KmsJwsSigner(kms, requiredEnv('HOST_CREDENTIAL_KEY_ARN'));

export const handler = apiHandler(operations.issueHostCredentials, async ({ path, body, caller }) => {
  assertActsForHost(caller, path.hostId);
  return { statusCode: 200, body: await issueCredentialsForHost(tableName, credentials, path.hostId, body.publicKey, { lifetimeSeconds: body.lifetimeSeconds }) };
});
