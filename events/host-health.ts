import { z } from 'zod';

/**
 * A host's health, from its agent's heartbeats: `healthy` (heard from lately), `suspect` (a
 * heartbeat or two missed), `down` (silent past the bound, or never heard from), `cordoned` (alive,
 * but an operator keeps new VMs off it). Placement takes only `healthy` hosts.
 */
export const HostHealth = z.enum(['healthy', 'suspect', 'down', 'cordoned']);
export type HostHealth = z.infer<typeof HostHealth>;

/** How often an agent says it is alive. */
export const HEARTBEAT_INTERVAL_MS = 5_000;
/** Silent this long (two heartbeats missed, and some slack): suspect. */
export const SUSPECT_AFTER_MS = 12_000;
/** Silent this long: down. A killed agent's host is down at most this plus one interval after its death. */
export const DOWN_AFTER_MS = 20_000;
