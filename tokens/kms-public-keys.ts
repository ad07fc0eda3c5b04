import { createPublicKey, type KeyObject } from 'node:crypto';
import { DescribeKeyCommand, GetPublicKeyCommand, KMSClient } from '@aws-sdk/client-kms';
import type { PublicKeySource } from './jws.ts';

/** `arn:aws:kms:us-east-1:111122223333:key/1234abcd-...` → `1234abcd-...`; a bare key id stays as it is. */
export const keyIdOf = (keyIdOrArn: string) => keyIdOrArn.slice(keyIdOrArn.lastIndexOf('/') + 1);

/** The region of a KMS ARN, or undefined for a bare key id. */
const regionOf = (keyIdOrArn: string) => (keyIdOrArn.startsWith('arn:') ? keyIdOrArn.split(':')[3] : undefined);

interface TrustedKey {
  kid: string;
  arn: string;
}

/**
 * Public halves of the KMS signing keys a verifier trusts, fetched once and kept: a KMS key's
 * public key never changes, so verification after the first call needs no network at all.
 * Only keys named at construction are ever fetched, whatever `kid` a token claims. A key may be
 * named by its ARN or by an alias ARN, in any region: each region's control plane names the
 * other regions' token keys by alias, since their key ids exist only once those regions are deployed.
 */
export class KmsPublicKeys implements PublicKeySource {
  private readonly byKid = new Map<string, TrustedKey>();
  /** Alias ARNs not resolved yet (their region may not be deployed yet): tried again when an unknown kid arrives. */
  private readonly unresolved: Set<string>;
  private resolving: Promise<void> | undefined;
  private readonly cache = new Map<string, Promise<KeyObject>>();
  private readonly clients = new Map<string, KMSClient>();

  constructor(
    private readonly kms: KMSClient,
    trustedKeys: readonly string[],
  ) {
    const aliases = trustedKeys.filter((key) => key.includes(':alias/'));
    for (const key of trustedKeys.filter((key) => !aliases.includes(key))) this.byKid.set(keyIdOf(key), { kid: keyIdOf(key), arn: key });
    this.unresolved = new Set(aliases);
  }

  async isTrusted(kid: string): Promise<boolean> {
    if (!this.byKid.has(kid) && this.unresolved.size > 0) await this.resolveAliases();
    return this.byKid.has(kid);
  }

  get(kid: string): Promise<KeyObject> {
    const key = this.byKid.get(kid);
    if (!key) return Promise.reject(new Error(`key ${kid} is not trusted`));
    let cached = this.cache.get(kid);
    if (!cached) {
      cached = this.fetch(key.arn);
      this.cache.set(kid, cached);
      cached.catch(() => this.cache.delete(kid));
    }
    return cached;
  }

  private resolveAliases(): Promise<void> {
    this.resolving ??= Promise.all(
      [...this.unresolved].map(async (alias) => {
        try {
          const { KeyMetadata } = await this.clientFor(alias).send(new DescribeKeyCommand({ KeyId: alias }));
          this.byKid.set(KeyMetadata!.KeyId!, { kid: KeyMetadata!.KeyId!, arn: KeyMetadata!.Arn! });
          this.unresolved.delete(alias);
        } catch {
          // That region's key is not there (yet); its tokens are refused until it is.
        }
      }),
    ).then(() => {
      this.resolving = undefined;
    });
    return this.resolving;
  }

  private clientFor(keyIdOrArn: string): KMSClient {
    const region = regionOf(keyIdOrArn);
    if (!region) return this.kms;
    let client = this.clients.get(region);
    if (!client) {
      client = new KMSClient({ region });
      this.clients.set(region, client);
    }
    return client;
  }

  private async fetch(key: string): Promise<KeyObject> {
    const response = await this.clientFor(key).send(new GetPublicKeyCommand({ KeyId: key }));
    if (response.KeySpec !== 'ECC_NIST_P256' || response.KeyUsage !== 'SIGN_VERIFY') {
      throw new Error(`KMS key ${key} is not an ECC_NIST_P256 signing key`);
    }
    return createPublicKey({ key: Buffer.from(response.PublicKey!), format: 'der', type: 'spki' });
  }
}
