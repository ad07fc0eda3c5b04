import { requiredEnv } from './env.ts';

/** The metadata table every function works on. */
export const tableName = requiredEnv('TABLE_NAME');
