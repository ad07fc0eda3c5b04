import { DeleteMessageBatchCommand, ReceiveMessageCommand, SQSClient, type Message } from '@aws-sdk/client-sqs';
import type { LocalFunction } from './function-host.ts';
import type { PollerCredentials } from './stream-poller.ts';

export interface QueueMappingConfig {
  queueUrl: string;
  queueArn: string;
  batchSize: number;
  maximumBatchingWindowSeconds: number;
  reportBatchItemFailures: boolean;
  region: string;
  /** Concurrent receive loops, like Lambda's pollers. */
  pollers: number;
  /** The function's role, which Lambda polls with. */
  credentials?: PollerCredentials;
}

/**
 * An SQS event source mapping: long-polls the queue, invokes the function with a batch, deletes
 * what succeeded. What failed stays on the queue, reappears after the visibility timeout and,
 * past the queue's maxReceiveCount, is moved to its dead-letter queue by SQS itself.
 */
export class QueuePoller {
  private readonly abort = new AbortController();
  private readonly sqs: SQSClient;

  constructor(
    private readonly config: QueueMappingConfig,
    private readonly fn: LocalFunction,
    private readonly log: (message: string) => void,
  ) {
    this.sqs = new SQSClient({ credentials: config.credentials });
  }

  start(): void {
    for (let i = 0; i < this.config.pollers; i++) void this.loop();
  }

  stop(): void {
    this.abort.abort();
  }

  private async loop() {
    while (!this.abort.signal.aborted) {
      try {
        const batch = await this.receiveBatch();
        if (batch.length > 0) await this.deliver(batch);
      } catch (error) {
        if (this.abort.signal.aborted) return;
        this.log(`queue ${this.config.queueArn}: ${(error as Error).message}`);
        await new Promise((resolve) => setTimeout(resolve, 1000));
      }
    }
  }

  /** Fills a batch up to its size, waiting at most the batching window once something arrived. */
  private async receiveBatch(): Promise<Message[]> {
    const batch: Message[] = [];
    const windowEnds = () => (batch.length === 0 ? Infinity : firstAt + this.config.maximumBatchingWindowSeconds * 1000);
    let firstAt = 0;
    while (batch.length < this.config.batchSize && !this.abort.signal.aborted) {
      const remainingWindow = windowEnds() - Date.now();
      if (batch.length > 0 && remainingWindow <= 0) break;
      const wait = batch.length === 0 ? 20 : Math.min(20, Math.floor(remainingWindow / 1000));
      const { Messages = [] } = await this.sqs.send(
        new ReceiveMessageCommand({
          QueueUrl: this.config.queueUrl,
          MaxNumberOfMessages: Math.min(10, this.config.batchSize - batch.length),
          WaitTimeSeconds: wait,
          MessageSystemAttributeNames: ['All'],
          MessageAttributeNames: ['All'],
        }),
        { abortSignal: this.abort.signal },
      );
      if (batch.length === 0) firstAt = Date.now();
      batch.push(...Messages);
      if (Messages.length === 0 && batch.length > 0) break;
    }
    return batch;
  }

  private async deliver(batch: Message[]) {
    let failed: Set<string>;
    try {
      const response = await this.fn.invoke<{ batchItemFailures?: { itemIdentifier?: string }[] } | undefined>(this.toLambdaEvent(batch));
      failed = this.config.reportBatchItemFailures ? new Set((response?.batchItemFailures ?? []).map((failure) => failure.itemIdentifier ?? '')) : new Set();
      // An identifier that names no message in the batch fails the whole batch, as on AWS.
      if ([...failed].some((id) => !batch.some((message) => message.MessageId === id))) failed = new Set(batch.map((message) => message.MessageId!));
    } catch (error) {
      this.log(`${this.fn.spec.functionName}: ${(error as Error).message}`);
      return;
    }
    const done = batch.filter((message) => !failed.has(message.MessageId!));
    for (let i = 0; i < done.length; i += 10) {
      await this.sqs.send(
        new DeleteMessageBatchCommand({
          QueueUrl: this.config.queueUrl,
          Entries: done.slice(i, i + 10).map((message, index) => ({ Id: String(index), ReceiptHandle: message.ReceiptHandle! })),
        }),
      );
    }
  }

  private toLambdaEvent(batch: Message[]) {
    return {
      Records: batch.map((message) => ({
        messageId: message.MessageId,
        receiptHandle: message.ReceiptHandle,
        body: message.Body ?? '',
        attributes: message.Attributes ?? {},
        messageAttributes: Object.fromEntries(
          Object.entries(message.MessageAttributes ?? {}).map(([name, value]) => [
            name,
            {
              stringValue: value.StringValue,
              binaryValue: value.BinaryValue ? Buffer.from(value.BinaryValue).toString('base64') : undefined,
              stringListValues: [],
              binaryListValues: [],
              dataType: value.DataType,
            },
          ]),
        ),
        md5OfBody: message.MD5OfBody,
        eventSource: 'aws:sqs',
        eventSourceARN: this.config.queueArn,
        awsRegion: this.config.region,
      })),
    };
  }
}
