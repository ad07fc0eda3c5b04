import { RemovalPolicy, Stack } from 'aws-cdk-lib';
import { PolicyStatement, type IGrantable } from 'aws-cdk-lib/aws-iam';
import { type Alias, Key, KeySpec, KeyUsage, type IKey } from 'aws-cdk-lib/aws-kms';
import { Construct, type IConstruct } from 'constructs';
import { acknowledgeWildcards } from '../nag.ts';
import { keyAlias } from '#events/naming.ts';
import { deploymentOf } from '../deployment.ts';

export interface ControlPlaneKeysProps {
  /** The control plane's regions other than this stack's: their API token keys are trusted too. */
  otherRegions: readonly string[];
}

/**
 * The region's KMS keys, in one place because each is kept when the stack is deleted (what they
 * encrypted or signed may outlive it) but deleted with a first deploy that rolls back, aliases
 * alike (`RETAIN_ON_UPDATE_OR_DELETE`), and each is used only through narrow grants: what signs,
 * what wraps, what encrypts data at rest. Aliases carry the deployment's name (events/naming.ts).
 */
export class ControlPlaneKeys extends Construct {
  /** Encrypts the metadata, the control-plane queues and the image content at rest. */
  readonly dataKey: Key;
  /** Signs API bearer tokens; the authorizer verifies them with its public key. */
  readonly apiTokenKey: Key;
  /** Signs attestations of VM SSH host keys. */
  readonly hostKeyAttestationKey: Key;
  /** Signs hosts' long-term service-account credentials. */
  readonly hostCredentialKey: Key;
  /** Wraps VMs' network-pair secrets; used only with the pair encryption context (`pairKeyStatement`). */
  readonly vmPairKey: Key;
  /** HMAC key list routes derive their cursor-signing key from. */
  readonly listCursorKey: Key;
  /** The other regions' API token keys, by alias ARN: a token issued in any region is good in all. */
  readonly otherRegionsApiTokenKeys: string[];

  constructor(scope: Construct, id: string, props: ControlPlaneKeysProps) {
    super(scope, id);
    const deployment = deploymentOf(this);
    this.dataKey = new Key(this, 'DataKey', {
      description: 'Encrypts Stratoplane metadata at rest and control-plane queues',
      enableKeyRotation: true,
      removalPolicy: RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE,
    });

    // Asymmetric: KMS signs tokens (operators issue them); verifiers hold only the public key.
    this.apiTokenKey = new Key(this, 'ApiTokenKey', {
      description: 'Signs Stratoplane API bearer tokens (ES256)',
      keySpec: KeySpec.ECC_NIST_P256,
      keyUsage: KeyUsage.SIGN_VERIFY,
      alias: keyAlias('api-tokens', deployment),
      removalPolicy: RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE,
    });

    this.hostKeyAttestationKey = new Key(this, 'HostKeyAttestationKey', {
      description: 'Signs attestations of VM SSH host keys (ES256)',
      keySpec: KeySpec.ECC_NIST_P256,
      keyUsage: KeyUsage.SIGN_VERIFY,
      alias: keyAlias('host-key-attestations', deployment),
      removalPolicy: RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE,
    });

    this.hostCredentialKey = new Key(this, 'HostCredentialKey', {
      description: "Signs hosts' long-term service-account credentials (ES256)",
      keySpec: KeySpec.ECC_NIST_P256,
      keyUsage: KeyUsage.SIGN_VERIFY,
      alias: keyAlias('host-credentials', deployment),
      removalPolicy: RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE,
    });

    this.vmPairKey = new Key(this, 'VmPairKey', {
      description: "Wraps VMs' network-pair secrets (data keys stored only encrypted)",
      enableKeyRotation: true,
      alias: keyAlias('vm-pair-keys', deployment),
      removalPolicy: RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE,
    });

    // List routes derive their cursor-signing key from it (functions/core/pagination.ts); HMAC keys do not rotate.
    this.listCursorKey = new Key(this, 'ListCursorKey', {
      description: 'Signs list cursors (nextToken), so clients cannot forge or reuse them across lists',
      keySpec: KeySpec.HMAC_256,
      keyUsage: KeyUsage.GENERATE_VERIFY_MAC,
      alias: keyAlias('list-cursors', deployment),
      removalPolicy: RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE,
    });

    // A key's alias (made by its `alias` prop) goes and stays with it.
    for (const key of [this.apiTokenKey, this.hostKeyAttestationKey, this.hostCredentialKey, this.vmPairKey, this.listCursorKey])
      (key.node.findChild('Alias') as Alias).applyRemovalPolicy(RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE);

    const stack = Stack.of(this);
    // On the stack: functions of every concern use the data key through CDK's grants (cdk-stack.test keeps these families on it).
    acknowledgeWildcards(
      stack,
      "CDK's encrypt/decrypt grants on the region's data key (table, queues, images bucket) use these KMS action families, on that key alone",
      {
        actions: ['kms:ReEncrypt*', 'kms:GenerateDataKey*'],
      },
    );
    this.otherRegionsApiTokenKeys = props.otherRegions.map((region) =>
      stack.formatArn({ service: 'kms', region, resource: 'alias', resourceName: keyAlias('api-tokens', deployment).slice('alias/'.length) }),
    );
  }
}

/** One KMS action on the pair key, and only with the pair encryption context (see `pairKeyContext`). */
export function pairKeyStatement(key: IKey, action: string): PolicyStatement {
  return new PolicyStatement({ actions: [action], resources: [key.keyArn], conditions: { StringEquals: { 'kms:EncryptionContext:purpose': 'network-pair' } } });
}

/** Why a grant names another region's keys by wildcard. */
export const otherRegionsKeysReason =
  "Another region's keys are made by that region's stack, so their ids are unknown here: the statement's condition (kms:ViaService or kms:ResourceAliases) picks them";

/** Lets `fn` use the other regions' keys, but only by `service` (SQS, S3) on its behalf there. */
export function grantOtherRegionsKeysVia(fn: IGrantable & IConstruct, service: 'sqs' | 's3', regions: readonly string[], actions: string[]): void {
  const stack = Stack.of(fn);
  const statement = new PolicyStatement({
    actions,
    resources: regions.map((region) => stack.formatArn({ service: 'kms', region, resource: 'key', resourceName: '*' })),
    conditions: { StringEquals: { 'kms:ViaService': regions.map((region) => `${service}.${region}.amazonaws.com`) } },
  });
  fn.grantPrincipal.addToPrincipalPolicy(statement);
  acknowledgeWildcards(fn, otherRegionsKeysReason, { resources: statement.resources });
}
