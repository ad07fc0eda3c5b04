import type { Stack } from 'aws-cdk-lib';
import { PolicyStatement, type IGrantable } from 'aws-cdk-lib/aws-iam';
import type { IConstruct } from 'constructs';
import { acknowledgeWildcards } from '../nag.ts';

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

  /** Lets `grantee` take these actions on every queue of the family. */
  grant(grantee: IGrantable & IConstruct, ...actions: string[]): void {
    grantee.grantPrincipal.addToPrincipalPolicy(new PolicyStatement({ actions, resources: [this.arns] }));
    this.acknowledgeIn(grantee);
  }

  /** Acknowledges the family's name-prefix wildcard in what `scope` holds (cdk-nag IAM5). */
  acknowledgeIn(scope: IConstruct): void {
    acknowledgeWildcards(
      scope,
      `Queues of this family are made at run time (a host's at registration, a shuffle job's per job): IAM knows them by their name prefix only`,
      {
        resources: [this.arns],
      },
    );
  }

  /** The queue of the family named with `suffix` after the prefix (may be an IAM policy variable). */
  arnOf(suffix: string): string {
    return this.stack.formatArn({ service: 'sqs', resource: `${this.prefix}${suffix}` });
  }
}
