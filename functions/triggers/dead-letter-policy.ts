export type FailureDecision = { action: 'dead-letter' } | { action: 'retry'; delaySeconds: number };

/** The longest wait before a failed message is tried again; SQS allows visibility up to 12 hours. */
const MAX_RETRY_DELAY_SECONDS = 60;

/**
 * What to do with a message whose handling failed on its `receiveCount`th delivery: give up on a
 * message that can never succeed, or on its last allowed attempt; otherwise try again after an
 * exponential delay (1 s, 2 s, 4 s, …), so a passing fault clears quickly and a lasting one
 * reaches the dead-letter queue in seconds, not after several whole visibility timeouts.
 */
export function failureDecision(receiveCount: number, maxAttempts: number, unprocessable: boolean): FailureDecision {
  if (unprocessable || receiveCount >= maxAttempts) return { action: 'dead-letter' };
  return { action: 'retry', delaySeconds: Math.min(MAX_RETRY_DELAY_SECONDS, 2 ** Math.max(0, receiveCount - 1)) };
}
