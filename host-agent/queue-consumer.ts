import { DeleteMessageBatchCommand, ReceiveMessageCommand, type Message, type SQSClient } from '@aws-sdk/client-sqs';

export type MessageHandler = (message: Message) => Promise<void> | void;

/**
 * Long-polls one queue and deletes only the messages its handler accepted; a rejected message
 * comes back after the visibility timeout and, after the queue's maxReceiveCount, goes to the DLQ.
 * stop() ends the current long poll and waits for the batch in hand to finish.
 */
export class QueueConsumer {
  private readonly abort = new AbortController();
  private running: Promise<void> | undefined;

  constructor(
    private readonly sqs: SQSClient,
    private readonly queueUrl: string,
    private readonly handle: MessageHandler,
    private readonly onError: (error: Error) => void,
    /** Called when the queue answers again after receives failed. */
    private readonly onRecovered: () => void = () => {},
    private readonly waitTimeSeconds = 20,
  ) {}

  start(): void {
    this.running ??= this.loop();
  }

  async stop(): Promise<void> {
    this.abort.abort();
    await this.running;
  }

  private async loop() {
    let failing = false;
    while (!this.abort.signal.aborted) {
      let messages: Message[];
      try {
        ({ Messages: messages = [] } = await this.sqs.send(
          new ReceiveMessageCommand({ QueueUrl: this.queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: this.waitTimeSeconds }),
          { abortSignal: this.abort.signal },
        ));
      } catch (error) {
        if (this.abort.signal.aborted) return;
        failing = true;
        this.onError(error as Error);
        await new Promise((resolve) => setTimeout(resolve, 1000));
        continue;
      }
      if (failing) {
        failing = false;
        this.onRecovered();
      }
      const accepted: Message[] = [];
      for (const message of messages) {
        try {
          await this.handle(message);
          accepted.push(message);
        } catch (error) {
          this.onError(error as Error);
        }
      }
      if (accepted.length > 0) await this.deleteAll(accepted);
    }
  }

  private async deleteAll(messages: Message[]) {
    try {
      await this.sqs.send(
        new DeleteMessageBatchCommand({
          QueueUrl: this.queueUrl,
          Entries: messages.map((message, index) => ({ Id: String(index), ReceiptHandle: message.ReceiptHandle! })),
        }),
      );
    } catch (error) {
      // Undeleted messages come back; applying them again is a no-op.
      this.onError(error as Error);
    }
  }
}
