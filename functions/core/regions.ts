import { ConflictError } from './errors.ts';

/** Whether an item belongs to `region`; items written before regions existed belong to the single region there was. */
export const inRegion = (item: { region?: string }, region: string) => item.region === undefined || item.region === region;

/**
 * A regional item changes only through its own region's control plane, so its conditional
 * writes never race another region's (global tables settle concurrent writes by last writer).
 */
export function assertHomeRegion<T extends { region?: string }>(item: T, region: string, what: string): T {
  if (!inRegion(item, region)) throw new ConflictError(`${what} is in ${item.region}; change it through the ${item.region} API`);
  return item;
}
