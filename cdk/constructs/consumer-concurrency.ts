/**
 * Concurrency reserved for each stream and queue consumer, which is also its ceiling: a burst of
 * changes or a backlog can neither starve the API's functions of the region's Lambda concurrency
 * nor be starved by them. 95 in all, well inside the 900 an account's default 1,000 leaves
 * reservable. Stream consumers need at most one per shard. (One table, so the budget is read in
 * one place although each consumer belongs to its own construct.)
 */
export const CONSUMER_CONCURRENCY = { NetworkChanges: 20, ImageCopyJobs: 5, FanOut: 50, ResourceGraph: 10, VerifyImages: 5, CopyImages: 5 } as const;
