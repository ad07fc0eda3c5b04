import type { HostMessage } from '#events/endpoints.ts';

/** SQS allows 256 KiB per message; leave room for attributes and encoding. */
export const MAX_BODY_BYTES = 200 * 1024;

export interface Outgoing {
  hostId: string;
  message: HostMessage;
  /** Id of the fan-out work item this message came from, to report its failure. */
  sourceId: string;
}

export interface HostBody {
  hostId: string;
  body: string;
  sourceIds: Set<string>;
}

/**
 * Packs the messages for each host into as few queue bodies as fit, so ten changes to one
 * network cost one send per host instead of ten. A snapshot too big for one body is split.
 */
export function packHostBodies(outgoing: readonly Outgoing[], maxBytes = MAX_BODY_BYTES): HostBody[] {
  const byHost = new Map<string, Outgoing[]>();
  for (const item of outgoing) {
    for (const piece of splitToFit(item, maxBytes)) {
      const list = byHost.get(item.hostId) ?? [];
      list.push(piece);
      byHost.set(item.hostId, list);
    }
  }
  const bodies: HostBody[] = [];
  for (const [hostId, items] of byHost) {
    let messages: HostMessage[] = [];
    let sourceIds = new Set<string>();
    let size = envelopeBytes;
    for (const item of items) {
      const bytes = Buffer.byteLength(JSON.stringify(item.message)) + 1;
      if (messages.length > 0 && size + bytes > maxBytes) {
        bodies.push({ hostId, body: JSON.stringify({ messages }), sourceIds });
        messages = [];
        sourceIds = new Set();
        size = envelopeBytes;
      }
      messages.push(item.message);
      sourceIds.add(item.sourceId);
      size += bytes;
    }
    bodies.push({ hostId, body: JSON.stringify({ messages }), sourceIds });
  }
  return bodies;
}

const envelopeBytes = Buffer.byteLength(JSON.stringify({ messages: [] }));

function splitToFit(item: Outgoing, maxBytes: number): Outgoing[] {
  const { message } = item;
  if (message.kind !== 'endpoints' || Buffer.byteLength(JSON.stringify(message)) + envelopeBytes <= maxBytes) return [item];
  const half = Math.ceil(message.entries.length / 2);
  if (half === message.entries.length) throw new Error(`one endpoint entry exceeds ${maxBytes} bytes`);
  return [
    ...splitToFit({ ...item, message: { ...message, entries: message.entries.slice(0, half) } }, maxBytes),
    ...splitToFit({ ...item, message: { ...message, entries: message.entries.slice(half) } }, maxBytes),
  ];
}
