import { operations } from '#events/operations.ts';
import { KmsJwsSigner } from '#tokens/kms-signer.ts';
import { kms } from '../../platform/clients.ts';
import { setting } from '../../platform/env.ts';
import { apiHandler } from '../../triggers/api-handler.ts';
import { tableName } from '../../platform/table.ts';
import { assertActsForHost } from '../../core/access.ts';
import { publishHostKeys } from '../host-keys.ts';

const attestations = new KmsJwsSigner(kms, setting('hostKeyAttestationKeyArn'));

export const handler = apiHandler(operations.publishHostKeys, async ({ path, body, caller }) => {
  assertActsForHost(caller, path.hostId);
  return { statusCode: 200, body: await publishHostKeys(tableName, attestations, path.hostId, path.vmId, body.keys) };
});
