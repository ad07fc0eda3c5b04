import { DeleteMessageBatchCommand, ReceiveMessageCommand, type Message, type SQSClient } from '@aws-sdk/client-sqs';

export type MessageHandler = (message: Message) => Promise<void> | void;

/** How receiving goes, for the agent's `/status`: a queue that fails shows here, not only in the log. */
export interface QueueConsumerStatus {
  /** Whether the last receive failed. */
  failing: boolean;
  /** Receives that failed since start, and the last one's error. */
  receiveErrors: number;
  lastReceiveError: { message: string; at: string } | null;
  /** When a receive last succeeded (an empty long poll included), and when one last brought a message. */
  lastReceiveAt: string | null;
  lastMessageAt: string | null;
}

/** The same receive error again is logged at most this often; /status counts every one. */
const REPEATED_ERROR_LOG_MS = 60_000;

/**
 * Long-polls one queue and deletes only the messages its handler accepted; a rejected message
 * comes back after the visibility timeout and, after the queue's maxReceiveCount, goes to the DLQ.
 * stop() ends the current long poll and waits for the batch in hand to finish.
 */
export class QueueConsumer {
  private readonly abort = new AbortController();
  private running: Promise<void> | undefined;
  private readonly receiving: QueueConsumerStatus = {
    failing: false,
    receiveErrors: 0,
    lastReceiveError: null,
    lastReceiveAt: null,
    lastMessageAt: null,
  };
  private lastLogged: { message: string; at: number } | undefined;

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

  status(): QueueConsumerStatus {
    return { ...this.receiving };
  }

  private async loop() {
    while (!this.abort.signal.aborted) {
      let messages: Message[];
      try {
        ({ Messages: messages = [] } = await this.sqs.send(
          new ReceiveMessageCommand({ QueueUrl: this.queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: this.waitTimeSeconds }),
          { abortSignal: this.abort.signal },
        ));
      } catch (error) {
        if (this.abort.signal.aborted) return;
        this.receiveFailed(error as Error);
        await new Promise((resolve) => setTimeout(resolve, 1000));
        continue;
      }
      const now = new Date().toISOString();
      this.receiving.lastReceiveAt = now;
      if (messages.length > 0) this.receiving.lastMessageAt = now;
      if (this.receiving.failing) {
        this.receiving.failing = false;
        this.lastLogged = undefined;
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

  private receiveFailed(error: Error) {
    const now = Date.now();
    this.receiving.failing = true;
    this.receiving.receiveErrors++;
    this.receiving.lastReceiveError = { message: error.message, at: new Date(now).toISOString() };
    // A queue that stays unreachable would otherwise fill the log with one line a second.
    if (this.lastLogged?.message === error.message && now - this.lastLogged.at < REPEATED_ERROR_LOG_MS) return;
    this.lastLogged = { message: error.message, at: now };
    this.onError(error);
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
