import { Duration, Stack } from 'aws-cdk-lib';
import type { IKey } from 'aws-cdk-lib/aws-kms';
import { SqsEventSource } from 'aws-cdk-lib/aws-lambda-event-sources';
import { Queue, QueueEncryption } from 'aws-cdk-lib/aws-sqs';
import type { Construct } from 'constructs';
import { deadLetterQueuePrefix } from '#events/naming.ts';
import { deploymentOf } from '../deployment.ts';
import type { ControlPlaneFunction } from './control-plane-function.ts';

/*
 * Why this file: every queue the control plane consumes is handled the same way (the handler
 * settles failures itself, SQS's redrive is only the backstop), and every dead-letter queue is
 * named so that `npm run dead-letters` finds it; declared once here, not per concern.
 */

/** How many times a queue's handler tries a message before it moves it to the DLQ with the reason. */
const HANDLER_ATTEMPTS = 5;

/** Control-plane queues: encrypted with the region's data key, TLS only. */
export const encryptedWith = (dataKey: IKey) => ({ encryption: QueueEncryption.KMS, encryptionMasterKey: dataKey, enforceSSL: true });

export interface DeadLetterQueueProps {
  /** Its name after the region's dead-letter prefix, e.g. `fan-out`. */
  name: string;
  /** The region's data key; without one, SQS-managed keys (for queues whose senders hold no KMS grant). */
  encryptionKey?: IKey;
  fifo?: boolean;
}

/** A dead-letter queue, named under the region's prefix so `npm run dead-letters` finds it; kept 14 days. */
export class DeadLetterQueue extends Queue {
  constructor(scope: Construct, id: string, props: DeadLetterQueueProps) {
    const encryption = props.encryptionKey ? encryptedWith(props.encryptionKey) : { encryption: QueueEncryption.SQS_MANAGED, enforceSSL: true };
    super(scope, id, {
      ...encryption,
      fifo: props.fifo,
      queueName: `${deadLetterQueuePrefix(Stack.of(scope).region, deploymentOf(scope))}${props.name}`,
      retentionPeriod: Duration.days(14),
    });
  }
}

export interface WorkQueueProps {
  /** The region's data key, which encrypts the queue. */
  dataKey: IKey;
  /** Where the handler moves what it gave up on, and SQS what no handler could settle. */
  deadLetters: DeadLetterQueue;
  /** At least the consumer's timeout: a message stays invisible while a function may still be working on it. */
  visibilityTimeout: Duration;
  fifo?: boolean;
  queueName?: string;
  /** How many times the handler tries a message (5 unless given). */
  attempts?: number;
}

/**
 * A queue whose consumer settles failures itself (see `consumedBy`), with its dead-letter queue.
 * SQS's own redrive, at twice the handler's attempts, catches only what the handler could not
 * settle: a function that crashed or timed out on the message every time, or the messages a
 * FIFO group held back behind a failing one.
 */
export class WorkQueue extends Queue {
  readonly attempts: number;
  readonly deadLetters: DeadLetterQueue;

  constructor(scope: Construct, id: string, props: WorkQueueProps) {
    const attempts = props.attempts ?? HANDLER_ATTEMPTS;
    super(scope, id, {
      ...encryptedWith(props.dataKey),
      fifo: props.fifo,
      queueName: props.queueName,
      visibilityTimeout: props.visibilityTimeout,
      deadLetterQueue: { queue: props.deadLetters, maxReceiveCount: attempts * 2 },
    });
    if (this.fifo !== props.deadLetters.fifo)
      throw new Error(`${this.node.path}: a FIFO queue needs a FIFO dead-letter queue, and only a FIFO queue may have one`);
    this.attempts = attempts;
    this.deadLetters = props.deadLetters;
  }

  /**
   * Makes `fn` the queue's consumer: batches report their failures item by item, and the handler
   * (functions/triggers/dead-letters.ts) delays each retry and, after the queue's attempts,
   * moves the message to the DLQ itself with the reason.
   */
  consumedBy(fn: ControlPlaneFunction, batchSize: number): void {
    fn.setting('sourceQueueUrl', this.queueUrl);
    fn.setting('deadLetterQueueUrl', this.deadLetters.queueUrl);
    fn.setting('maxAttempts', String(this.attempts));
    this.deadLetters.grantSendMessages(fn);
    // Pollers scale no further than the function's reserved concurrency: beyond it they would only
    // be throttled, and throttled batches count as receives towards the dead-letter queue.
    fn.addEventSource(new SqsEventSource(this, { batchSize, reportBatchItemFailures: true, maxConcurrency: fn.reservedConcurrency }));
  }
}
