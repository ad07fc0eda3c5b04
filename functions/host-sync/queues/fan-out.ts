import { NetworkChange } from '#events/endpoints.ts';
import { sendToHostQueue } from '../../platform/host-queues.ts';
import { currentRegion } from '../../platform/region.ts';
import { tableName } from '../../platform/table.ts';
import { queueHandler } from '../../triggers/queue-handler.ts';
import { fanOut } from '../fanout.ts';

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
      sendToHostQueue,
    ),
  { mode: 'batch', name: 'network change' },
);
