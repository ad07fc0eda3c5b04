import { describe, expect, it } from 'vitest';
import { decodeNextToken, encodeNextToken, type CursorScope } from '#functions/core/pagination.ts';
import { ValidationError } from '#functions/core/errors.ts';

/** A fixed key instead of the one derived through KMS: these tests run without AWS. */
const key = async () => Buffer.alloc(32, 7);
const otherKey = async () => Buffer.alloc(32, 8);
const networksOfA: CursorScope = { table: 'Stratoplane-Metadata', index: 'gsi1', partition: 'TENANT#tenant-a#NETWORKS' };
const lastKey = { pk: 'NET#net-1', sk: 'NET', gsi1pk: 'TENANT#tenant-a#NETWORKS', gsi1sk: 'net-1' };

async function refusal(token: string, scope = networksOfA, macKey = key): Promise<unknown> {
  return decodeNextToken(token, scope, macKey).then(
    () => undefined,
    (error: unknown) => error,
  );
}

describe('list cursors', () => {
  it('give back the key they were made from, for the list they were made for', async () => {
    const token = (await encodeNextToken(lastKey, networksOfA, key))!;
    expect(token).toMatch(/^c1\.[\w-]+\.[\w-]+$/);
    expect(await decodeNextToken(token, networksOfA, key)).toEqual(lastKey);
    expect(await encodeNextToken(undefined, networksOfA, key)).toBeUndefined();
    expect(await decodeNextToken(undefined, networksOfA, key)).toBeUndefined();
  });

  it('refuse a forged cursor: an unsigned start key, as cursors once were, or one with a made-up signature', async () => {
    const unsigned = Buffer.from(JSON.stringify({ pk: 'NET#x', sk: 'NET' })).toString('base64url');
    for (const token of [unsigned, `c1.${unsigned}.${Buffer.alloc(32).toString('base64url')}`, 'c1..', 'garbage', `c1.${unsigned}.x.y`]) {
      const error = await refusal(token);
      expect(error).toBeInstanceOf(ValidationError);
      expect((error as ValidationError).statusCode).toBe(400);
      expect((error as Error).message).toMatch(/^nextToken: is not a token this API returned for this list/);
    }
  });

  it('refuse a cursor whose start key was altered', async () => {
    const [version, , mac] = (await encodeNextToken(lastKey, networksOfA, key))!.split('.');
    const altered = Buffer.from(JSON.stringify({ ...lastKey, gsi1sk: 'net-0' })).toString('base64url');
    expect(await refusal(`${version}.${altered}.${mac}`)).toBeInstanceOf(ValidationError);
  });

  it("refuse another tenant's cursor, another list's, and one signed with another key", async () => {
    const token = (await encodeNextToken(lastKey, networksOfA, key))!;
    expect(await refusal(token, { ...networksOfA, partition: 'TENANT#tenant-b#NETWORKS' })).toBeInstanceOf(ValidationError);
    expect(await refusal(token, { ...networksOfA, partition: 'TENANT#tenant-a#DISKS' })).toBeInstanceOf(ValidationError);
    expect(await refusal(token, { ...networksOfA, index: 'gsi2' })).toBeInstanceOf(ValidationError);
    expect(await refusal(token, networksOfA, otherKey)).toBeInstanceOf(ValidationError);
  });
});
