import { setting } from './env.ts';

/** The metadata table every function works on. */
export const tableName = setting('tableName');
