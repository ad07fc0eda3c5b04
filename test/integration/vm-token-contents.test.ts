import { beforeAll, describe, expect, it } from 'vitest';
import type { HostCredentialClaims } from '#events/tokens.ts';
import { decodeJws } from '#tokens/jws.ts';
import { KeyPairJwsSigner } from '#tokens/key-pair-signer.ts';
import { mintVmToken } from '#tokens/vm-tokens.ts';
import { api, createVmOn, expectOk, uniqueId } from '../helpers/api.ts';
import { keepAlive } from '../helpers/heartbeats.ts';
import { operatorToken, tenantToken, tokenFor } from '../helpers/tokens.ts';

/**
 * What a VM's service-account token tells the origins it goes to (the egress proxy puts it on
 * the VM's outbound requests): its own VM, never its neighbours'. The token carries the host's
 * credential, so a credential must name one VM only, even when several VMs on the host share a
 * service account.
 */
describe('a VM token names no other VM', () => {
  const tenantId = uniqueId('vm-token');
  const tenant = tenantToken(tenantId);
  const hostId = uniqueId('vm-token-host');
  const hostKey = KeyPairJwsSigner.generate();
  const vms: any[] = [];

  beforeAll(async () => {
    await expectOk(api('POST', '/hosts', { hostId, address: '198.51.100.156', capacity: 8 }, operatorToken()), 201);
    await keepAlive(hostId);
    const { networkId } = await expectOk(api('POST', '/networks', { name: 'vm-token', cidr: '10.96.0.0/24' }, tenant), 201);
    const account = await expectOk(api('POST', '/service-accounts', { name: 'shared' }, tenant), 201);
    for (const name of ['one', 'two', 'three']) {
      const vm = await expectOk(createVmOn({ name, networkId, hostId }, tenantId), 201);
      vms.push(await expectOk(api('PUT', `/vms/${vm.vmId}/service-account`, { serviceAccountId: account.serviceAccountId }, tenant)));
    }
  });

  it('gets one credential per VM from the control plane, each naming that VM alone and its host only by an opaque reference', async () => {
    const { kty, crv, x, y } = hostKey.publicKey.export({ format: 'jwk' });
    const { credentials } = await expectOk(
      api('POST', `/hosts/${hostId}/service-account-credentials`, { publicKey: { kty, crv, x, y } }, tokenFor('host', hostId)),
    );
    expect(credentials.map((issued: any) => issued.vmIds).sort()).toEqual(vms.map((vm) => [vm.vmId]).sort());

    for (const issued of credentials) {
      const claims = decodeJws(issued.credential).payload as HostCredentialClaims;
      expect(claims.vms).toEqual(issued.vmIds);
      const [vmId] = issued.vmIds as [string];
      // What goes out with the VM's requests: the token, and the credential inside it.
      const { token } = mintVmToken(hostKey, { credential: issued.credential, claims, vmId, audience: 'https://origin.example.com' });
      const payload = decodeJws(token).payload;
      const everything = JSON.stringify({ payload, credential: decodeJws(payload.cred as string).payload });
      for (const other of vms.filter((vm) => vm.vmId !== vmId)) expect(everything).not.toContain(other.vmId);
      expect(everything).toContain(vmId);
      // Nor the physical host: an opaque reference stands for it.
      expect(everything).not.toContain(hostId);
      expect(claims.host).toMatch(/^hr-[0-9a-f]{20}$/);
    }
  });
});
