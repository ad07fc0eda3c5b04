/*
 * What a handler adds to a message it moves to its dead-letter queue: why it gave up, so the
 * operator who reads or redrives the queue knows without searching the logs.
 */
export const deadLetterAttributes = {
  reason: 'stratoplane-failure-reason',
  sourceQueueArn: 'stratoplane-source-queue',
  attempts: 'stratoplane-attempts',
  failedAt: 'stratoplane-failed-at',
} as const;

/** Reasons are cut to this many characters: SQS allows 256 KiB per message, attributes included. */
export const MAX_REASON_LENGTH = 2_000;
