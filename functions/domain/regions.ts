/** Whether an item belongs to `region`; items written before regions existed belong to the single region there was. */
export const inRegion = (item: { region?: string }, region: string) => item.region === undefined || item.region === region;
