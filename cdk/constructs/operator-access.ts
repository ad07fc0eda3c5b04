import { ManagedPolicy, PolicyStatement } from 'aws-cdk-lib/aws-iam';
import type { IKey } from 'aws-cdk-lib/aws-kms';
import { Construct } from 'constructs';
import { CALLER_HOST_ID, SHUFFLE_HOSTS_TAG_KEYS } from '#events/host-access.ts';
import { pairKeyStatement } from './keys.ts';
import type { QueueFamily } from './queue-family.ts';

export interface OperatorAccessProps {
  /** Signs API bearer tokens. */
  apiTokenKey: IKey;
  /** Wraps VMs' network-pair secrets; hosts unwrap those of the VMs they run. */
  vmPairKey: IKey;
  /** Every host's endpoint-update queue. */
  hostQueues: QueueFamily;
  /** Shuffle jobs' queues. */
  shuffleQueues: QueueFamily;
}

/**
 * What the control plane hands its operators to attach to people and machines outside it: the
 * managed policies of token issuers and of host machines, kept apart from the functions' roles.
 */
export class OperatorAccess extends Construct {
  /** Lets an operator issue API tokens (`npm run -s issue-token`). */
  readonly tokenIssuerPolicy: ManagedPolicy;
  /** Attached to host machines' role; per host by the session's principal tag. */
  readonly hostAgentPolicy: ManagedPolicy;

  constructor(scope: Construct, id: string, props: OperatorAccessProps) {
    super(scope, id);
    // What an operator who issues API tokens needs (`npm run -s issue-token`).
    this.tokenIssuerPolicy = new ManagedPolicy(this, 'TokenIssuerPolicy', {
      description: 'Lets a Stratoplane operator issue API bearer tokens',
      statements: [new PolicyStatement({ actions: ['kms:Sign', 'kms:DescribeKey'], resources: [props.apiTokenKey.keyArn] })],
    });

    // What an operator attaches to host machines' role: consume the host's own queue, move shuffle
    // records of the jobs its VMs work for, and unwrap the pair secrets of VMs (the API hands a host
    // only the ciphertexts of VMs it runs). Per host by attribute: the role session carries the
    // principal tag `stratoplane:host-id` (events/host-access.ts); a session without it gets no queue.
    this.hostAgentPolicy = new ManagedPolicy(this, 'HostAgentPolicy', {
      description: "Lets a Stratoplane host agent consume its own endpoint updates, move its jobs' shuffle records and check network-pair tokens",
      statements: [
        new PolicyStatement({
          actions: ['sqs:ReceiveMessage', 'sqs:DeleteMessage', 'sqs:ChangeMessageVisibility', 'sqs:GetQueueUrl'],
          resources: [props.hostQueues.arnOf(CALLER_HOST_ID)],
        }),
        // Shuffle records go from the sender's host straight to the receiving worker's queue: only
        // between the hosts a job's queues are tagged with (one statement per tag key: any may name it).
        ...SHUFFLE_HOSTS_TAG_KEYS.map(
          (tagKey) =>
            new PolicyStatement({
              actions: ['sqs:SendMessage', 'sqs:ReceiveMessage', 'sqs:DeleteMessage', 'sqs:ChangeMessageVisibility', 'sqs:GetQueueUrl'],
              resources: [props.shuffleQueues.arns],
              conditions: { StringLike: { [`aws:ResourceTag/${tagKey}`]: `*/${CALLER_HOST_ID}/*` } },
            }),
        ),
        pairKeyStatement(props.vmPairKey, 'kms:Decrypt'),
      ],
    });
    props.shuffleQueues.acknowledgeIn(this.hostAgentPolicy);
  }
}
