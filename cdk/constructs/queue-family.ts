import type { Stack } from 'aws-cdk-lib';

/**
 * Queues the control plane creates at run time (a host's queue when it registers, a shuffle job's
 * queues), so no construct declares them: IAM knows them only by their name prefix, which this
 * class derives once for the functions that create them and the hosts that use them.
 */
export class QueueFamily {
  /** `Stratoplane-us-east-1-host-`: every queue of the family is named with it. */
  readonly prefix: string;
  /** Every queue of the family, as an IAM resource. */
  readonly arns: string;

  constructor(
    private readonly stack: Stack,
    kind: 'host' | 'shuffle',
  ) {
    this.prefix = `${stack.stackName}-${kind}-`;
    this.arns = stack.formatArn({ service: 'sqs', resource: `${this.prefix}*` });
  }

  /** The queue of the family named with `suffix` after the prefix (may be an IAM policy variable). */
  arnOf(suffix: string): string {
    return this.stack.formatArn({ service: 'sqs', resource: `${this.prefix}${suffix}` });
  }
}
