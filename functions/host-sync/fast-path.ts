import type { EndpointEntry } from '#events/endpoints.ts';
import { logger } from '../platform/logger.ts';
import { fanOut, type SendToQueue } from './fanout.ts';

/**
 * The fast path for an endpoint change: the function that committed it sends it to the hosts that
 * need it at once, instead of leaving it to the table's stream (a poll, then two function hops). The
 * stream still delivers the same change a little later, harmlessly (an agent keeps an entry's
 * highest version), and delivers it alone if this fails: a failure here is logged, never the
 * caller's error.
 */
export async function fanOutEndpointNow(table: string, region: string, networkId: string, entry: EndpointEntry, send: SendToQueue): Promise<void> {
  try {
    const failed = await fanOut(table, region, [{ id: 'fast-path', change: { kind: 'endpoint', networkId, entry } }], send);
    const error = failed.get('fast-path');
    if (error)
      logger.warn('the fast path did not reach every host; the stream will', { networkId, vmId: entry.vmId, version: entry.version, error: error as Error });
  } catch (error) {
    logger.warn('the fast path failed; the stream will deliver the change', { networkId, vmId: entry.vmId, error: error as Error });
  }
}
