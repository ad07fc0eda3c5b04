import { afterEach, describe, expect, it } from 'vitest';
import { METADATA_RATE_LIMITS, VmMetadataServer, type MetadataBackend } from '../../host-agent/metadata-server.ts';

const flavor = { 'metadata-flavor': 'Stratoplane' };

/** A VM's metadata server over a backend that records what reaches it. */
async function serve(vmId: string, limits = METADATA_RATE_LIMITS) {
  const reached = { hostKeys: 0, tokens: 0 };
  const backend: MetadataBackend = {
    publishHostKey: async () => void reached.hostKeys++,
    attributesOf: () => ({}),
    serviceAccountOf: () => 'sa-1',
    mintToken: () => `token-${++reached.tokens}`,
    shuffle: {} as MetadataBackend['shuffle'],
    pairs: {} as MetadataBackend['pairs'],
  };
  const server = new VmMetadataServer({ vmId, ip: '10.0.0.2', networkId: 'net-1' }, backend, () => {}, limits);
  await server.listen();
  servers.push(server);
  return { url: server.url, reached };
}
const servers: VmMetadataServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => server.close()));
});

const putKey = (url: string, type = 'ssh-ed25519') =>
  fetch(`${url}/computeMetadata/v1/instance/guest-attributes/hostkeys/${type}`, { method: 'PUT', headers: flavor, body: 'AAAAC3NzaC1lZDI1NTE5AAAAIA==' });
const identity = (url: string) =>
  fetch(`${url}/computeMetadata/v1/instance/service-accounts/default/identity?audience=https://api.example.test`, { headers: flavor });

describe("a VM's metadata server limits", () => {
  it('answers host-key uploads past the burst with 429 and Retry-After, without reaching the agent', async () => {
    const { url, reached } = await serve('vm-a');
    const { burst, rate } = METADATA_RATE_LIMITS.writes;
    const answers = [];
    for (let i = 0; i < burst + 3; i++) answers.push(await putKey(url));
    expect(answers.map((answer) => answer.status)).toEqual([...Array(burst).fill(200), 429, 429, 429]);
    expect(reached.hostKeys).toBe(burst);
    const refused = answers.at(-1)!;
    expect(Number(refused.headers.get('retry-after'))).toBe(Math.ceil(1 / rate));
    expect(await refused.text()).toMatch(/^Too many metadata writes from this VM .*retry after \d+ s\./);
    // Any other write counts too, whatever its path, and reads are not limited.
    expect((await fetch(`${url}/computeMetadata/v1/instance/attributes/x`, { method: 'POST', headers: flavor })).status).toBe(429);
    expect((await fetch(`${url}/computeMetadata/v1/instance/id`, { headers: flavor })).status).toBe(200);
  });

  it('limits token minting per VM: past the burst a 429, and another VM is not affected', async () => {
    const limits = { writes: METADATA_RATE_LIMITS.writes, tokens: { rate: 1, burst: 5 } };
    const a = await serve('vm-a', limits);
    const b = await serve('vm-b', limits);
    const statuses = [];
    for (let i = 0; i < 7; i++) statuses.push((await identity(a.url)).status);
    expect(statuses).toEqual([200, 200, 200, 200, 200, 429, 429]);
    expect(a.reached.tokens).toBe(5);
    const refused = await identity(a.url);
    expect(refused.headers.get('retry-after')).toBe('1');
    expect((await identity(b.url)).status).toBe(200);
  });

  it('has default limits a booting VM and a busy token client stay under', () => {
    expect(METADATA_RATE_LIMITS.writes.burst).toBeGreaterThanOrEqual(4); // a key per type at boot
    expect(METADATA_RATE_LIMITS.tokens.rate).toBeGreaterThanOrEqual(10);
  });
});
