import { SendMessageCommand } from '@aws-sdk/client-sqs';
import { NetworkChange } from '#events/endpoints.ts';
import { sqs } from '../../platform/clients.ts';
import { currentRegion } from '../../platform/region.ts';
import { tableName } from '../../platform/table.ts';
import { queueHandler } from '../../triggers/queue-handler.ts';
import { fanOut } from '../fanout.ts';

const send = async (queueUrl: string, body: string) => {
  await sqs.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: body }));
};

/**
 * Delivers a batch of network changes to host queues, grouped per host (so the whole batch goes
 * to fanOut at once). Each failed change is settled alone: retried after a delay, or on its last
 * attempt moved to the DLQ with the reason, while the rest of the batch is delivered.
 */
export const handler = queueHandler(
  NetworkChange,
  (messages) =>
    fanOut(
      tableName,
      currentRegion,
      messages.map(({ id, message }) => ({ id, change: message })),
      send,
    ),
  { mode: 'batch', name: 'network change' },
);
