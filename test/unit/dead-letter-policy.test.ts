import { describe, expect, it } from 'vitest';
import { failureDecision } from '#functions/triggers/dead-letter-policy.ts';

describe('failureDecision', () => {
  it('retries after 1, 2, 4, 8 s and gives up on the last attempt', () => {
    expect([1, 2, 3, 4, 5].map((receiveCount) => failureDecision(receiveCount, 5, false))).toEqual([
      { action: 'retry', delaySeconds: 1 },
      { action: 'retry', delaySeconds: 2 },
      { action: 'retry', delaySeconds: 4 },
      { action: 'retry', delaySeconds: 8 },
      { action: 'dead-letter' },
    ]);
  });

  it('gives up at once on a message that can never succeed', () => {
    expect(failureDecision(1, 5, true)).toEqual({ action: 'dead-letter' });
  });

  it('gives up on a message delivered more often than allowed (a redriven one keeps its count on some queues)', () => {
    expect(failureDecision(9, 5, false)).toEqual({ action: 'dead-letter' });
  });

  it('never waits more than a minute between attempts', () => {
    expect(failureDecision(20, 50, false)).toEqual({ action: 'retry', delaySeconds: 60 });
  });
});
