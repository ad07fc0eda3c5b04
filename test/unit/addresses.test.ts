import { describe, expect, it } from 'vitest';
import { freeListEntry, takeAddress, versionFor } from '#functions/network/addresses.ts';

const slot = { pk: 'NET#net-1', sk: 'SLOT#10.0.0.9', kind: 'slot', ip: '10.0.0.9' };

describe('taking an address in a create’s transaction', () => {
  it('writes a fresh or returned address’s slot only if none exists, at version 1', () => {
    for (const choice of [
      { kind: 'fresh', ip: '10.0.0.9', handedOut: 8 },
      { kind: 'returned', ip: '10.0.0.9' },
    ] as const) {
      expect(versionFor(choice)).toBe(1);
      expect(takeAddress('T', 'net-1', choice, slot).slot).toEqual({ Put: { TableName: 'T', Item: slot, ConditionExpression: 'attribute_not_exists(pk)' } });
    }
    expect(takeAddress('T', 'net-1', { kind: 'fresh', ip: '10.0.0.9', handedOut: 8 }, slot).release).toBeUndefined();
  });

  it('takes a returned address off the free list in the same transaction, only if it is still there', () => {
    expect(takeAddress('T', 'net-1', { kind: 'returned', ip: '10.0.0.9' }, slot).release).toEqual({
      Delete: { TableName: 'T', Key: { pk: 'NET#net-1', sk: 'RETURNED#10.0.0.9' }, ConditionExpression: 'attribute_exists(pk)' },
    });
  });

  it('reuses a released slot under its next version, only if it is still released at the version read', () => {
    const choice = { kind: 'released', ip: '10.0.0.9', version: 4 } as const;
    expect(versionFor(choice)).toBe(5);
    expect(takeAddress('T', 'net-1', choice, slot)).toEqual({
      slot: {
        Put: {
          TableName: 'T',
          Item: slot,
          ConditionExpression: '#state = :released AND version = :previous',
          ExpressionAttributeNames: { '#state': 'state' },
          ExpressionAttributeValues: { ':released': 'released', ':previous': 4 },
        },
      },
    });
  });

  it('files free addresses under their network at random positions', () => {
    const positions = new Set(Array.from({ length: 100 }, () => freeListEntry('net-1').gsi2sk));
    expect(positions.size).toBeGreaterThan(95);
    expect(freeListEntry('net-1').gsi2pk).toBe('FREE#NET#net-1');
  });
});
