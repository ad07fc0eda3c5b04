import { describe, expect, it } from 'vitest';
import { judgeHandoffTicket, ticketHash } from '../../functions/shuffle/shuffle-handoffs.ts';
import { spillHolderOf, type ShuffleWorkerItem } from '../../functions/shuffle/shuffle-jobs.ts';
import { sameAddress } from '../../host-agent/shuffle-service.ts';

const now = new Date('2026-12-04T10:00:00Z');
const ticket = 'a'.repeat(43);
const job = { workers: ['vm-a', 'vm-b'] };
/** vm-a moved from host-old to host-new, which was issued a ticket; host-old still holds the spill. */
const pending: ShuffleWorkerItem = {
  kind: 'shuffle-worker',
  jobId: 'shuf-1',
  vmId: 'vm-a',
  hostId: 'host-old',
  received: 10,
  spillUrl: 'http://192.0.2.11:7447',
  handoffHash: ticketHash(ticket),
  handoffTo: 'host-new',
  handoffExpiresAt: '2026-12-04T10:05:00Z',
};
const judge = (overrides: Partial<Parameters<typeof judgeHandoffTicket>[0]> = {}) =>
  judgeHandoffTicket({ hostId: 'host-old', vmId: 'vm-a', toHostId: 'host-new', ticket, now, job, worker: pending, vmHostId: 'host-new', ...overrides });

describe('hand-off tickets', () => {
  it('let the host the worker runs on now fetch its spill from the host holding it, while fresh', () => {
    expect(judge()).toEqual({ state: 'pending' });
    expect(judge({ now: new Date('2026-12-04T10:05:00Z') })).toEqual({ refused: 'the ticket expired' });
  });

  it('say the take-over is complete to the host it was taken from only', () => {
    const taken = { ...pending, hostId: 'host-new', previousHostId: 'host-old' };
    expect(judge({ worker: taken })).toEqual({ state: 'complete' });
    // Completed long after the ticket's fetch window: still the proof the old host may delete.
    expect(judge({ worker: taken, now: new Date('2026-12-05T00:00:00Z') })).toEqual({ state: 'complete' });
    expect(judge({ worker: taken, hostId: 'host-other' })).toEqual({ refused: 'host host-other does not hold it' });
  });

  it('refuse another host, another VM, a made-up ticket, a worker that moved on, and a spill nobody asked for', () => {
    expect(judge({ toHostId: 'host-other' })).toEqual({ refused: 'it was issued to host host-new' });
    expect(judge({ ticket: 'b'.repeat(43) })).toEqual({ refused: 'not the ticket issued' });
    expect(judge({ vmHostId: 'host-third' })).toEqual({ refused: 'the vm runs on host host-third now' });
    expect(judge({ vmId: 'vm-c' })).toEqual({ refused: 'no hand-off of it was asked for' });
    expect(judge({ worker: { ...pending, handoffHash: undefined } })).toEqual({ refused: 'no hand-off of it was asked for' });
    expect(judge({ hostId: 'host-other' })).toEqual({ refused: 'host host-other does not hold it' });
  });

  it('keep only the ticket digest', () => {
    expect(ticketHash(ticket)).toMatch(/^[0-9a-f]{64}$/);
    expect(ticketHash(ticket)).not.toContain(ticket);
  });
});

describe('who holds a worker spill', () => {
  it('is the last reporting host, else its host when the job began, else (older jobs) its host now', () => {
    expect(spillHolderOf({ workerHosts: { 'vm-a': 'h1' } }, 'vm-a', { hostId: 'h2' }, 'h3')).toBe('h2');
    expect(spillHolderOf({ workerHosts: { 'vm-a': 'h1' } }, 'vm-a', undefined, 'h3')).toBe('h1');
    expect(spillHolderOf({}, 'vm-a', undefined, 'h3')).toBe('h3');
  });
});

describe('peer addresses', () => {
  it('match the registered IPv4 address, also IPv4-mapped', () => {
    expect(sameAddress('192.0.2.11', '192.0.2.11')).toBe(true);
    expect(sameAddress('::ffff:192.0.2.11', '192.0.2.11')).toBe(true);
    expect(sameAddress('192.0.2.12', '192.0.2.11')).toBe(false);
    expect(sameAddress(undefined, '192.0.2.11')).toBe(false);
  });
});
