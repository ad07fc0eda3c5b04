import { setting } from './env.ts';

/** The region's table of endpoint versions each host agent acknowledged. */
export const convergenceTableName = setting('convergenceTableName');
