import { generateKeyPairSync } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { METADATA_RATE_LIMITS } from '../../host-agent/metadata-server.ts';
import { eventually, startAgent, type RunningAgent } from '../helpers/agents.ts';
import { api, createVmOn, expectOk, uniqueId } from '../helpers/api.ts';
import { openSshPublicKey } from '../helpers/ssh-keys.ts';
import { tokenFor } from '../helpers/tokens.ts';

const flavor = { 'metadata-flavor': 'Stratoplane' };
const newKey = () => openSshPublicKey(generateKeyPairSync('ed25519').publicKey, 'vm');

describe("abuse limits on a VM's metadata server", () => {
  let agent: RunningAgent;
  let vm: any;
  let metadataUrl: string;

  const putHostKey = (line: string) => {
    const [type, data] = line.split(' ');
    return fetch(`${metadataUrl}/computeMetadata/v1/instance/guest-attributes/hostkeys/${type}`, { method: 'PUT', headers: flavor, body: data });
  };
  const identity = () =>
    fetch(`${metadataUrl}/computeMetadata/v1/instance/service-accounts/default/identity?audience=https://limits.example.test`, { headers: flavor });

  beforeAll(async () => {
    agent = await startAgent(uniqueId('limits'), '198.51.100.193');
    const network = await expectOk(api('POST', '/networks', { name: 'limits', cidr: '10.95.0.0/24' }), 201);
    vm = await expectOk(createVmOn({ name: 'noisy', networkId: network.networkId, hostId: agent.hostId }), 201);
    await eventually(async () => {
      metadataUrl = ((await agent.status()) as any).vms[vm.vmId]?.metadataUrl;
      expect(metadataUrl).toBeTruthy();
    });
  });

  afterAll(async () => {
    await agent?.process.stop();
  });

  it('does not attest an unchanged host-key set again, from the agent or through the API', async () => {
    const key = newKey();
    expect((await putHostKey(key)).status).toBe(200);
    const first = await expectOk(api('GET', `/vms/${vm.vmId}/host-keys`));
    expect(first.keys).toHaveLength(1);
    await new Promise((resolve) => setTimeout(resolve, 1100)); // a new attestation would carry a later time

    // The VM uploads the same key again (a reboot): nothing new is attested.
    expect((await putHostKey(key)).status).toBe(200);
    expect(await expectOk(api('GET', `/vms/${vm.vmId}/host-keys`))).toEqual(first);

    // The host forwards the same set itself (an agent that restarted): the control plane keeps the attestation.
    const asHost = (keys: string[]) => expectOk(api('PUT', `/hosts/${agent.hostId}/vms/${vm.vmId}/host-keys`, { keys }, tokenFor('host', agent.hostId)));
    const again = await asHost([key]);
    expect(again).toMatchObject({ attestation: first.attestation, publishedAt: first.publishedAt });

    // A changed set is attested anew.
    const changed = await asHost([newKey()]);
    expect(changed.attestation).not.toBe(first.attestation);
    expect(changed.publishedAt).not.toBe(first.publishedAt);
  });

  it('answers host-key uploads past the per-VM limit with 429 and Retry-After, and forwards none of them', async () => {
    const { burst } = METADATA_RATE_LIMITS.writes;
    const answers: Response[] = [];
    // The first test spent two; the limit holds at the burst whatever the keys.
    for (let i = 0; i < burst + 2; i++) answers.push(await putHostKey(newKey()));
    const statuses = answers.map((answer) => answer.status);
    expect(statuses.filter((status) => status === 200).length).toBeLessThanOrEqual(burst - 1);
    expect(statuses.slice(-3)).toEqual([429, 429, 429]);
    const refused = answers.at(-1)!;
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(await refused.text()).toMatch(/Too many metadata writes from this VM/);

    // The tenant sees the last key accepted, never one refused.
    const lastAccepted = statuses.lastIndexOf(200);
    expect(lastAccepted).toBeGreaterThanOrEqual(0);
    expect((await expectOk(api('GET', `/vms/${vm.vmId}/host-keys`))).keys).toHaveLength(1);
  });

  it('answers token requests past the per-VM limit with 429 and Retry-After', async () => {
    const account = await expectOk(api('POST', '/service-accounts', { name: 'limits' }), 201);
    await expectOk(api('PUT', `/vms/${vm.vmId}/service-account`, { serviceAccountId: account.serviceAccountId }));
    await eventually(async () => expect((await identity()).status).toBe(200), 30_000, 250);

    const { burst } = METADATA_RATE_LIMITS.tokens;
    const statuses: number[] = [];
    let refused: Response | undefined;
    // Concurrent callers drain the burst faster than it refills.
    for (let round = 0; round < 10 && !refused; round++) {
      const answers = await Promise.all(Array.from({ length: burst / 2 }, () => identity()));
      statuses.push(...answers.map((answer) => answer.status));
      refused = answers.find((answer) => answer.status === 429);
    }
    expect(refused).toBeDefined();
    expect(statuses.filter((status) => status === 200).length).toBeGreaterThanOrEqual(burst - 10);
    expect(Number(refused!.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(await refused!.text()).toMatch(/Too many token requests from this VM/);
  });
});
