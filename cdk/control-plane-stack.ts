import { Stack, type CfnElement, type StackProps } from 'aws-cdk-lib';
import type { ITableV2 } from 'aws-cdk-lib/aws-dynamodb';
import type { Construct } from 'constructs';
import { ipv4Cidr } from '#events/identifiers.ts';
import { ConvergenceTable } from './constructs/convergence-table.ts';
import { LivenessTable } from './constructs/liveness-table.ts';
import { HostSweep } from './constructs/host-sweep.ts';
import { HostFanOut } from './constructs/host-fan-out.ts';
import { acknowledgeImagePrefix, ImagePipeline } from './constructs/image-pipeline.ts';
import { ControlPlaneKeys } from './constructs/keys.ts';
import { MetadataTable } from './constructs/metadata-table.ts';
import { OperatorAccess } from './constructs/operator-access.ts';
import { QueueFamily } from './constructs/queue-family.ts';
import { ResourceGraph } from './constructs/resource-graph.ts';
import { TenantApi } from './constructs/tenant-api.ts';
import { setDeployment } from './deployment.ts';
import { flat, flatLogicalId } from './flat-logical-ids.ts';

export interface ControlPlaneStackProps extends StackProps {
  /** The deployment's name: its stacks' name prefix, from which every fixed physical name derives (events/naming.ts). */
  deployment: string;
  /** Every region the control plane runs in; the first one's stack defines the global table. */
  regions: readonly string[];
  /** Private ranges opened to VMs' egress (see egressOpenCidrsOf); validated here, at synth. */
  egressOpenCidrs?: readonly string[];
}

/**
 * The whole control plane of one region, composed of one construct per concern: its keys, its
 * replica of the global metadata table with its stream, the fan-out path that turns endpoint
 * changes into per-host queue messages, the resource graph, images and their cross-region
 * copies, the tenant/operator REST API, and the policies operators attach to people and hosts.
 */
export class ControlPlaneStack extends Stack {
  readonly table: ITableV2;

  constructor(scope: Construct, id: string, props: ControlPlaneStackProps) {
    super(scope, id, props);
    setDeployment(this, props.deployment);
    const otherRegions = props.regions.filter((region) => region !== this.region);

    // `flat`: these constructs leave their resources' logical IDs as they were (see allocateLogicalId).
    const keys = flat(new ControlPlaneKeys(this, 'Keys', { otherRegions }));
    const { dataKey } = keys;
    const metadata = flat(new MetadataTable(this, 'MetadataTable', { regions: props.regions, dataKey }));
    this.table = metadata.table;
    const hostFanOut = flat(new HostFanOut(this, 'HostFanOut', { metadata, dataKey }));
    const graph = flat(new ResourceGraph(this, 'ResourceGraph', { table: this.table, dataKey, otherRegions }));
    const images = flat(new ImagePipeline(this, 'ImagePipeline', { metadata, dataKey, otherRegions }));
    // Releasing a copy deletes its content.
    images.bucket.grantDelete(graph.handler, 'images/*');
    acknowledgeImagePrefix(graph.handler, images.bucket, ['s3:DeleteObject*']);
    const convergenceTable = new ConvergenceTable(this, 'Convergence', { encryptionKey: dataKey });
    const livenessTable = new LivenessTable(this, 'Liveness', { encryptionKey: dataKey });
    const shuffleQueues = new QueueFamily(this, 'shuffle');
    new HostSweep(this, 'HostSweep', {
      table: this.table,
      livenessTable,
      vmPairKey: keys.vmPairKey,
      hostQueues: hostFanOut.hostQueues,
      shuffleQueues,
    });

    new TenantApi(this, 'Api', {
      egressOpenCidrs: validCidrs(props.egressOpenCidrs ?? []),
      table: this.table,
      convergenceTable,
      livenessTable,
      hostQueues: hostFanOut.hostQueues,
      hostDlq: hostFanOut.hostDlq,
      shuffleQueues,
      apiTokenKey: keys.apiTokenKey,
      otherRegionsApiTokenKeys: keys.otherRegionsApiTokenKeys,
      hostKeyAttestationKey: keys.hostKeyAttestationKey,
      hostCredentialKey: keys.hostCredentialKey,
      vmPairKey: keys.vmPairKey,
      listCursorKey: keys.listCursorKey,
      graphQueue: graph.queue,
      imagesBucket: images.bucket,
      imageVerifyQueue: images.verifyQueue,
    });
    flat(
      new OperatorAccess(this, 'OperatorAccess', {
        apiTokenKey: keys.apiTokenKey,
        vmPairKey: keys.vmPairKey,
        hostQueues: hostFanOut.hostQueues,
        shuffleQueues,
      }),
    );
  }

  /**
   * Logical IDs as they were when every resource was the stack's own child (cdk/flat-logical-ids.ts):
   * CloudFormation would replace a table, key, queue or bucket whose logical ID changed.
   */
  protected override allocateLogicalId(element: CfnElement): string {
    return flatLogicalId(element);
  }
}

function validCidrs(cidrs: readonly string[]): string[] {
  const invalid = cidrs.filter((cidr) => !ipv4Cidr.safeParse(cidr).success);
  if (invalid.length > 0)
    throw new Error(`egressOpenCidrs: ${invalid.join(', ')} ${invalid.length === 1 ? 'is not an IPv4 CIDR' : 'are not IPv4 CIDRs'} (such as 10.20.0.0/16)`);
  return [...cidrs];
}
