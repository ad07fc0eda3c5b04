/*
 * Names that one region's stack or functions use to find another region's resources: they are
 * fixed, because cross-region CloudFormation references do not exist.
 */

/** One control-plane stack per region: `Stratoplane-us-east-1`, `Stratoplane-eu-west-1`, … */
export const stackNameFor = (region: string) => `Stratoplane-${region}`;

/** The global table's name, the same in every region so each region's stack can find its replica. */
export const METADATA_TABLE_NAME = 'Stratoplane-Metadata';

/** Each region's image bucket, named so that any region can copy from any other. */
export const imagesBucketName = (account: string, region: string) => `stratoplane-images-${account}-${region}`;

/** Each region's resource-graph queue, so a region can hand a node's release to the node's own region. */
export const graphQueueName = (region: string) => `${stackNameFor(region)}-graph.fifo`;

/** Every dead-letter queue of a region's stack starts with this, so operators' tools find them all and nothing else. */
export const deadLetterQueuePrefix = (region: string) => `${stackNameFor(region)}-dead-`;
