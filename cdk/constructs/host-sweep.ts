import { Duration } from 'aws-cdk-lib';
import type { ITable, ITableV2 } from 'aws-cdk-lib/aws-dynamodb';
import { Rule, Schedule } from 'aws-cdk-lib/aws-events';
import { LambdaFunction } from 'aws-cdk-lib/aws-events-targets';
import type { IKey } from 'aws-cdk-lib/aws-kms';
import { Construct } from 'constructs';
import { ControlPlaneFunction } from './control-plane-function.ts';
import { pairKeyStatement } from './keys.ts';
import type { QueueFamily } from './queue-family.ts';

export interface HostSweepProps {
  table: ITableV2;
  /** Host agents' heartbeats: which hosts are down. */
  livenessTable: ITable;
  /** A VM restarted elsewhere gets a new pair secret, as in any move. */
  vmPairKey: IKey;
  /** Its new endpoint goes to the hosts that need it at once (the fast path). */
  hostQueues: QueueFamily;
  /** A restarted shuffle worker's job queues are retagged with its new host. */
  shuffleQueues: QueueFamily;
}

/**
 * Every minute, moves the VMs that must leave their hosts: those of down hosts that asked to be
 * restarted elsewhere (`onHostFailure: restart`), and those still on hosts being drained. One sweep
 * at a time (reserved concurrency 1): two would race for the same VMs, which their conditions
 * would settle, but for nothing.
 */
export class HostSweep extends Construct {
  constructor(scope: Construct, id: string, props: HostSweepProps) {
    super(scope, id);
    const sweep = new ControlPlaneFunction(this, 'SweepHosts', {
      entry: 'functions/compute/schedules/sweep-hosts.ts',
      reservedConcurrentExecutions: 1,
      timeout: Duration.seconds(50),
      settings: { tableName: props.table.tableName, livenessTableName: props.livenessTable.tableName, vmPairKeyArn: props.vmPairKey.keyArn },
    });
    props.table.grantReadWriteData(sweep);
    props.livenessTable.grantReadData(sweep);
    sweep.addToRolePolicy(pairKeyStatement(props.vmPairKey, 'kms:GenerateDataKeyWithoutPlaintext'));
    props.hostQueues.grant(sweep, 'sqs:SendMessage');
    props.shuffleQueues.grant(sweep, 'sqs:TagQueue', 'sqs:UntagQueue');
    new Rule(this, 'EveryMinute', {
      description: 'Moves the VMs that must leave their hosts: restarts of down hosts (onHostFailure: restart) and drains',
      schedule: Schedule.rate(Duration.minutes(1)),
      targets: [new LambdaFunction(sweep, { retryAttempts: 0 })],
    });
  }
}
