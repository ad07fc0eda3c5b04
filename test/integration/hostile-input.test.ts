import fc from 'fast-check';
import { z } from 'zod';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { operations, type Operation } from '#events/operations.ts';
import { api, createVmOn, expectOk, uniqueId } from '../helpers/api.ts';
import { keepAlive } from '../helpers/heartbeats.ts';
import { operatorToken, tenantToken } from '../helpers/tokens.ts';

/**
 * Tenant A sends malformed, oversized and cross-tenant requests to every route: path ids that are
 * tenant B's, garbage or huge; bodies of any shape, objects with the route's own field names but
 * values out of every range, and megabyte strings; queries of random names and values. Every
 * answer must be one the OpenAPI description documents (the api helper checks status and body),
 * never a 5xx, and never carry anything of tenant B's the request did not itself name.
 */
describe('hostile input on every route', () => {
  const tenantBId = uniqueId('hostile-b');
  const tenantA = tenantToken(uniqueId('hostile-a'));
  const tenantB = tenantToken(tenantBId);
  let secretsOfB: string[] = [];
  const idsOfB: Record<string, string> = {};

  beforeAll(async () => {
    const hostId = uniqueId('hostile-host');
    await expectOk(api('POST', '/hosts', { hostId, address: '198.51.100.250', capacity: 2 }, operatorToken()), 201);
    await keepAlive(hostId);
    const network = await expectOk(api('POST', '/networks', { name: 'b-secret-net', cidr: '10.93.0.0/24' }, tenantB), 201);
    const vm = await expectOk(createVmOn({ name: 'b-secret-vm', networkId: network.networkId, hostId }, tenantBId), 201);
    const account = await expectOk(api('POST', '/service-accounts', { name: 'b-secret-robot' }, tenantB), 201);
    const image = (await expectOk(api('POST', '/images', { name: 'b-secret-image', sizeBytes: 10, sha256: '0'.repeat(64) }, tenantB), 201)).image;
    Object.assign(idsOfB, {
      networkId: network.networkId,
      sourceNetworkId: network.networkId,
      vmId: vm.vmId,
      serviceAccountId: account.serviceAccountId,
      imageId: image.imageId,
      projectId: vm.projectId,
      hostId,
    });
    secretsOfB = [tenantBId, vm.ip, 'b-secret-net', 'b-secret-vm', 'b-secret-robot', 'b-secret-image', ...Object.values(idsOfB).filter((id) => id !== hostId)];
  });

  const garbage = fc.oneof(
    fc.string({ maxLength: 40 }),
    fc.string({ unit: 'grapheme', maxLength: 40 }),
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a Log4Shell-style probe, sent as plain text on purpose.
    fc.constantFrom('', '..', '%00', '*', '\u0000', 'vm-000000000000', 'a'.repeat(3000), '${jndi:x}', "'; DROP TABLE vms; --"),
  );
  /** A value no field of the API accepts. */
  const outOfRange = fc.oneof(
    fc.constantFrom(null, -1, 0.5, 1e12, Number.MAX_SAFE_INTEGER, -0, true, '', 'x'.repeat(70_000), '10.0.0.0/33', '999.1.1.1'),
    fc.array(fc.anything(), { maxLength: 3 }),
    fc.object({ maxDepth: 2 }),
  );
  const fieldsOf = (schema: z.ZodType | undefined): string[] => (schema instanceof z.ZodObject ? Object.keys(schema.shape) : []);

  const requestFor = (operation: Operation) =>
    fc.record({
      params: fc.record(
        Object.fromEntries(
          operation.path
            .match(/\{(\w+)\}/g)
            ?.map((name) => name.slice(1, -1))
            .map((name) => [
              name,
              // A path segment of dots is resolved away by every URL parser (`/vms/.` is `/vms/`): no client can send one.
              fc.oneof(idsOfB[name] ? fc.constant(idsOfB[name]!) : garbage, garbage).filter((value) => value !== '.' && value !== '..'),
            ]) ?? [],
        ),
      ),
      body: fc.oneof(
        fc.anything({ maxDepth: 3 }),
        fieldsOf(operation.body).length > 0
          ? fc.record(Object.fromEntries(fieldsOf(operation.body).map((field) => [field, outOfRange])), { requiredKeys: [] })
          : fc.constant({}),
        fc.constant('{"unterminated": '),
        fc.constant(`{"name": "${'n'.repeat(1_048_576)}"}`),
      ),
      query: fc.dictionary(fc.oneof(fc.constantFrom('limit', 'nextToken', 'networkId'), fc.string({ maxLength: 10 })), garbage, { maxKeys: 3 }),
    });

  it.each(Object.values<Operation>(operations).map((operation) => [operation.operationId, operation] as const))(
    '%s: no 5xx, only documented answers, nothing of another tenant',
    async (_, operation) => {
      await fc.assert(
        fc.asyncProperty(requestFor(operation), async ({ params, body, query }) => {
          const path = operation.path.replace(/\{(\w+)\}/g, (_, name: string) => encodeURIComponent(params[name] ?? ''));
          const search = new URLSearchParams(query).toString();
          const sent = operation.method === 'GET' || operation.method === 'DELETE' ? undefined : body;
          const requestText = `${path} ${search} ${typeof sent === 'string' ? sent : JSON.stringify(sent ?? null)}`;
          // The helper throws on an undocumented status or body, and on table attributes in it.
          const response = await api(operation.method, `${path}${search ? `?${search}` : ''}`, sent, tenantA);
          expect(response.status).toBeLessThan(500);
          const answer = JSON.stringify(response.body ?? null);
          for (const secret of secretsOfB) if (!requestText.includes(secret)) expect(answer).not.toContain(secret);
        }),
        // 60 per route: over 3,000 requests in all.
        { numRuns: 60 },
      );
    },
    120_000,
  );

  it('answers query names like constructor or __proto__ and broken percent-encoding with a 400, and stays up (both once crashed the local gateway)', async () => {
    const odd = await api('GET', '/vms?constructor=1&__proto__=2&toString=3', undefined, tenantA);
    expect(odd.status).toBe(400);
    const broken = await fetch(`${inject('apiUrl')}/vms/%E0%A4%A`, { headers: { authorization: `Bearer ${await tenantA}` } });
    expect(broken.status).toBe(400);
    expect(await broken.json()).toEqual({ message: 'the path segment %E0%A4%A is not valid percent-encoding' });
    expect((await api('GET', '/vms', undefined, tenantA)).status).toBe(200);
  });

  it("left tenant B's resources as they were", async () => {
    expect(await expectOk(api('GET', `/vms/${idsOfB.vmId}`, undefined, tenantB))).toMatchObject({
      name: 'b-secret-vm',
      networkId: idsOfB.networkId,
      // What its host did with it, if it has a live one; never stopped or failed by A.
      state: expect.stringMatching(/^(provisioning|starting|running)$/),
      powerState: 'running',
    });
    expect((await expectOk(api('GET', '/networks', undefined, tenantB))).networks).toHaveLength(1);
  });
});
