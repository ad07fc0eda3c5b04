import { BatchProcessor, EventType, processPartialResponse } from '@aws-lambda-powertools/batch';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy from '@middy/core';
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import type { z } from 'zod';
import { deadLettersFromEnvironment, UnprocessableMessageError, type FailureSettler } from './dead-letters.ts';
import { logger } from '../platform/logger.ts';

/** One parsed message of a batch, with the record it came in. */
export interface QueueMessage<T> {
  /** The SQS message id: what a batch handler names its failures by. */
  id: string;
  message: T;
  record: SQSRecord;
}

interface CommonOptions {
  /** What the queue carries, for the reason a malformed message is dead-lettered with ("malformed graph message: …"). */
  name?: string;
  /** Settles failed records; by default on this function's own queue and dead-letter queue, from its settings. */
  deadLetters?: FailureSettler;
}

export interface RecordOptions extends CommonOptions {
  /**
   * `record` (the default): records are handled independently, side by side.
   * `fifo`: records of one message group are handled one after another, groups side by side; a
   * record to be retried holds back the rest of its group (reported failed, untried, and made
   * visible again at once so they come back right after it, in order); a record moved to the
   * dead-letter queue does not.
   */
  mode?: 'record' | 'fifo';
}

export interface BatchOptions extends CommonOptions {
  /** The handler gets every well-formed message of the batch at once and returns its failures by message id. */
  mode: 'batch';
}

export type RecordHandler<T> = (message: T, record: SQSRecord) => Promise<void>;
export type BatchHandler<T> = (messages: QueueMessage<T>[]) => Promise<ReadonlyMap<string, unknown>>;

/**
 * Wraps a queue consumer as apiHandler wraps a route: the Lambda context in every log line, each
 * body parsed as JSON and checked with the queue's shared schema (a malformed one is dead-lettered
 * at once with the reason), and every failure settled in one place (retried after a delay, or
 * dead-lettered on its last attempt) with partial batch failures reported to the event source.
 */
export function queueHandler<S extends z.ZodType>(
  schema: S,
  handle: RecordHandler<z.infer<S>>,
  options?: RecordOptions,
): middy.MiddyfiedHandler<SQSEvent, SQSBatchResponse>;
export function queueHandler<S extends z.ZodType>(
  schema: S,
  handle: BatchHandler<z.infer<S>>,
  options: BatchOptions,
): middy.MiddyfiedHandler<SQSEvent, SQSBatchResponse>;
export function queueHandler<S extends z.ZodType>(
  schema: S,
  handle: RecordHandler<z.infer<S>> | BatchHandler<z.infer<S>>,
  options: RecordOptions | BatchOptions = {},
): middy.MiddyfiedHandler<SQSEvent, SQSBatchResponse> {
  const settler = options.deadLetters ?? deadLettersFromEnvironment();
  const decode = (record: SQSRecord): z.infer<S> => decodeBody(schema, record, options.name ?? 'message');
  const run = (() => {
    switch (options.mode) {
      case 'batch':
        return batchMode(decode, handle as BatchHandler<z.infer<S>>, settler);
      case 'fifo':
        return fifoMode(decode, handle as RecordHandler<z.infer<S>>, settler);
      default:
        return recordMode(decode, handle as RecordHandler<z.infer<S>>, settler);
    }
  })();
  return middy<SQSEvent, SQSBatchResponse>().use(injectLambdaContext(logger)).handler(run);
}

/** The message a record carries, or UnprocessableMessageError naming what is wrong with it. */
function decodeBody<S extends z.ZodType>(schema: S, record: SQSRecord, name: string): z.infer<S> {
  let value: unknown;
  try {
    value = JSON.parse(record.body);
  } catch {
    throw new UnprocessableMessageError(`malformed ${name}: the body is not JSON`);
  }
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const path = issue?.path.map(String).join('.');
  throw new UnprocessableMessageError(`malformed ${name}: ${path ? `${path}: ` : ''}${issue?.message ?? 'does not match its schema'}`);
}

type Run = (event: SQSEvent, context: Context) => Promise<SQSBatchResponse>;

const reported = (event: SQSEvent, retried: ReadonlySet<string>): SQSBatchResponse => ({
  batchItemFailures: event.Records.filter((record) => retried.has(record.messageId)).map((record) => ({ itemIdentifier: record.messageId })),
});

/** Records side by side through Powertools' BatchProcessor; a record throws out of it only when it is to be retried. */
function recordMode<T>(decode: (record: SQSRecord) => T, handle: RecordHandler<T>, settler: FailureSettler): Run {
  const processor = new BatchProcessor(EventType.SQS);
  const recordHandler = async (record: SQSRecord): Promise<void> => {
    try {
      await handle(decode(record), record);
    } catch (error) {
      if ((await settler.settleFailure(record, error)) === 'retry') throw error;
    }
  };
  return (event, context) => processPartialResponse(event, recordHandler, processor, { context });
}

/** Every well-formed record to the handler at once; malformed ones and the handler's failures settled alike. */
function batchMode<T>(decode: (record: SQSRecord) => T, handle: BatchHandler<T>, settler: FailureSettler): Run {
  return async (event) => {
    const messages: QueueMessage<T>[] = [];
    const failures = new Map<string, unknown>();
    for (const record of event.Records) {
      try {
        messages.push({ id: record.messageId, message: decode(record), record });
      } catch (error) {
        failures.set(record.messageId, error);
      }
    }
    if (messages.length > 0) {
      try {
        for (const [id, error] of await handle(messages)) failures.set(id, error);
      } catch (error) {
        // The handler could not say which failed: all of its messages did.
        for (const { id } of messages) failures.set(id, error);
      }
    }
    const retried = new Set<string>();
    await Promise.all(
      event.Records.filter((record) => failures.has(record.messageId)).map(async (record) => {
        if ((await settler.settleFailure(record, failures.get(record.messageId))) === 'retry') retried.add(record.messageId);
      }),
    );
    return reported(event, retried);
  };
}

/** Groups side by side, each group's records in order, a retried record holding back the rest of its group. */
function fifoMode<T>(decode: (record: SQSRecord) => T, handle: RecordHandler<T>, settler: FailureSettler): Run {
  return async (event) => {
    const groups = new Map<string, SQSRecord[]>();
    for (const record of event.Records) {
      const group = record.attributes.MessageGroupId ?? record.messageId;
      groups.set(group, [...(groups.get(group) ?? []), record]);
    }
    const retried = new Set<string>();
    await Promise.all(
      [...groups.values()].map(async (records) => {
        for (const [index, record] of records.entries()) {
          try {
            await handle(decode(record), record);
          } catch (error) {
            if ((await settler.settleFailure(record, error)) === 'dead-lettered') continue;
            const untried = records.slice(index + 1);
            // The group is blocked until the failed record comes back: let the rest come back right after it.
            await Promise.all(untried.map((rest) => settler.delayRetry(rest, 0)));
            if (untried.length > 0)
              logger.info('held back the rest of a message group behind a retried message', {
                messageId: record.messageId,
                heldBack: untried.map((rest) => rest.messageId),
              });
            for (const failed of [record, ...untried]) retried.add(failed.messageId);
            return;
          }
        }
      }),
    );
    return reported(event, retried);
  };
}
