/**
 * The environment contract between the stack and its functions: every setting a construct may
 * give a function, by the name code uses, and the variable that carries it. The CDK writes them
 * with `environmentOf`/`setEnvironment`, functions read them with `setting` (functions/platform/env.ts),
 * so a name cannot be misspelt on one side only.
 */
export const functionEnvironment = {
  tableName: 'TABLE_NAME',
  convergenceTableName: 'CONVERGENCE_TABLE_NAME',
  livenessTableName: 'LIVENESS_TABLE_NAME',
  imagesBucket: 'IMAGES_BUCKET',
  imageVerifyQueueUrl: 'IMAGE_VERIFY_QUEUE_URL',
  imageCopyQueueUrl: 'IMAGE_COPY_QUEUE_URL',
  fanOutQueueUrl: 'FANOUT_QUEUE_URL',
  graphQueueUrl: 'GRAPH_QUEUE_URL',
  /** The deployment's name, from which other regions' queue names derive (events/naming.ts). */
  deployment: 'DEPLOYMENT_NAME',
  hostQueuePrefix: 'HOST_QUEUE_PREFIX',
  hostDlqArn: 'HOST_DLQ_ARN',
  shuffleQueuePrefix: 'SHUFFLE_QUEUE_PREFIX',
  vmPairKeyArn: 'VM_PAIR_KEY_ARN',
  hostKeyAttestationKeyArn: 'HOST_KEY_ATTESTATION_KEY_ARN',
  hostCredentialKeyArn: 'HOST_CREDENTIAL_KEY_ARN',
  /** Comma-separated: this region's key first, then other regions' (tokens minted there verify here). */
  apiTokenKeyArns: 'API_TOKEN_KEY_ARNS',
  listCursorKeyArn: 'LIST_CURSOR_KEY_ARN',
  /** Comma-separated private CIDRs VMs' outbound proxies may reach (empty: public addresses only). */
  egressOpenCidrs: 'EGRESS_OPEN_CIDRS',
  /** The queue a consumer reads, its dead-letter queue and how many tries a message gets. */
  sourceQueueUrl: 'SOURCE_QUEUE_URL',
  deadLetterQueueUrl: 'DEAD_LETTER_QUEUE_URL',
  maxAttempts: 'MAX_ATTEMPTS',
} as const;

export type FunctionSetting = keyof typeof functionEnvironment;

/** The variables for the given settings, as a function's `environment`. */
export function environmentOf(settings: Partial<Record<FunctionSetting, string>>): Record<string, string> {
  return Object.fromEntries(Object.entries(settings).map(([name, value]) => [functionEnvironment[name as FunctionSetting], value!]));
}
