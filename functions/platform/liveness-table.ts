import { setting } from './env.ts';

/** The region's table of host agents' heartbeats. */
export const livenessTableName = setting('livenessTableName');
