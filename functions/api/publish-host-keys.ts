import { operations } from '#events/operations.ts';
import { KmsJwsSigner } from '#tokens/kms-signer.ts';
import { kms } from '../commons/clients.ts';
import { requiredEnv } from '../commons/env.ts';
import { apiHandler } from '../commons/http.ts';
import { tableName } from '../commons/table.ts';
import { assertActsForHost } from '../domain/access.ts';
import { publishHostKeys } from '../domain/host-keys.ts';

const attestations = new KmsJwsSigner(kms, requiredEnv('HOST_KEY_ATTESTATION_KEY_ARN'));

export const handler = apiHandler(operations.publishHostKeys, async ({ path, body, caller }) => {
  assertActsForHost(caller, path.hostId);
  return { statusCode: 200, body: await publishHostKeys(tableName, attestations, path.hostId, path.vmId, body.keys) };
});
