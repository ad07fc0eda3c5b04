import { operations } from '#events/operations.ts';
import { KmsJwsSigner } from '#tokens/kms-signer.ts';
import { kms } from '../../platform/clients.ts';
import { setting } from '../../platform/env.ts';
import { apiHandler } from '../../triggers/api-handler.ts';
import { tableName } from '../../platform/table.ts';
import { assertActsForHost } from '../../core/access.ts';
import { issueCredentialsForHost } from '../host-credentials.ts';

const credentials = new KmsJwsSigner(kms, setting('hostCredentialKeyArn'));

export const handler = apiHandler(operations.issueHostCredentials, async ({ path, body, caller }) => {
  assertActsForHost(caller, path.hostId);
  return {
    statusCode: 200,
    body: await issueCredentialsForHost(tableName, credentials, path.hostId, body.publicKey, { lifetimeSeconds: body.lifetimeSeconds }),
  };
});
