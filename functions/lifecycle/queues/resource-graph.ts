import { GraphMessage } from '#events/projects.ts';
import { sendGraphMessages } from '../../platform/graph-queue.ts';
import { currentRegion } from '../../platform/region.ts';
import { tableName } from '../../platform/table.ts';
import { queueHandler } from '../../triggers/queue-handler.ts';
import { handleGraphMessage } from '../resource-graph.ts';

/**
 * The resource graph's FIFO consumer. Order only matters within a message group (one node): the
 * wrapper's fifo mode handles groups side by side and each group's records in order, a retried
 * record holding back the rest of its group.
 */
export const handler = queueHandler(GraphMessage, (message) => handleGraphMessage(tableName, currentRegion, message, sendGraphMessages), {
  mode: 'fifo',
  name: 'graph message',
});
