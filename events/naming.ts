/*
 * Physical names of what a deployment creates with a fixed name, all derived from its
 * *deployment name*, the prefix of its stacks' names (`Stratoplane` → stacks
 * `Stratoplane-us-east-1`, `Stratoplane-eu-west-1`): two deployments with different names share an
 * account without a clash, and a retained resource of one never blocks the other. Names are fixed
 * because one region's stack or functions find another region's resources by them:
 * cross-region CloudFormation references do not exist.
 */

/** The deployment name when none is given (`-c deployment=…` or STRATOPLANE_DEPLOYMENT). */
export const DEFAULT_DEPLOYMENT = 'Stratoplane';

/**
 * A deployment name: a letter, then letters, digits or hyphens, 20 at most, so that every name
 * below stays within its service's limits (S3's 63 characters with account and region).
 */
export const DEPLOYMENT_NAME = /^[A-Za-z][A-Za-z0-9-]{0,19}$/;

/** The deployment a command, test or the local runner addresses: STRATOPLANE_DEPLOYMENT, else the default. */
export const deploymentFromEnvironment = (): string => process.env.STRATOPLANE_DEPLOYMENT || DEFAULT_DEPLOYMENT;

/** The control-plane stack of a region: `Stratoplane-us-east-1`, `Stratoplane-eu-west-1`, … */
export const stackNameFor = (region: string, deployment: string = DEFAULT_DEPLOYMENT) => `${deployment}-${region}`;

/** The global table's name, the same in every region so each region's stack can find its replica. */
export const metadataTableName = (deployment: string = DEFAULT_DEPLOYMENT) => `${deployment}-Metadata`;

/** Each region's image bucket, named so that any region can copy from any other (S3 names are lowercase and global). */
export const imagesBucketName = (account: string, region: string, deployment: string = DEFAULT_DEPLOYMENT) =>
  `${deployment.toLowerCase()}-images-${account}-${region}`;

/** What each KMS key of a region is for, as its alias says. */
export type KeyPurpose = 'api-tokens' | 'host-key-attestations' | 'host-credentials' | 'vm-pair-keys' | 'list-cursors';

/** A key's alias in its region: `alias/stratoplane/api-tokens` (verifiers and operators find keys by it). */
export const keyAlias = (purpose: KeyPurpose, deployment: string = DEFAULT_DEPLOYMENT) => `alias/${deployment.toLowerCase()}/${purpose}`;

/** Each region's resource-graph queue, so a region can hand a node's release to the node's own region. */
export const graphQueueName = (region: string, deployment: string = DEFAULT_DEPLOYMENT) => `${stackNameFor(region, deployment)}-graph.fifo`;

/** Every dead-letter queue of a region's stack starts with this, so operators' tools find them all and nothing else. */
export const deadLetterQueuePrefix = (region: string, deployment: string = DEFAULT_DEPLOYMENT) => `${stackNameFor(region, deployment)}-dead-`;
