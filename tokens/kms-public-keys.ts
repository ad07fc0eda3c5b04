import { createPublicKey, type KeyObject } from 'node:crypto';
import { GetPublicKeyCommand, type KMSClient } from '@aws-sdk/client-kms';
import type { PublicKeySource } from './jws.ts';

/** `arn:aws:kms:us-east-1:111122223333:key/1234abcd-...` → `1234abcd-...`; a bare key id stays as it is. */
export const keyIdOf = (keyIdOrArn: string) => keyIdOrArn.slice(keyIdOrArn.lastIndexOf('/') + 1);

/**
 * Public halves of the KMS signing keys a verifier trusts, fetched once and kept: a KMS key's
 * public key never changes, so verification after the first call needs no network at all.
 * Only keys named at construction are ever fetched, whatever `kid` a token claims.
 */
export class KmsPublicKeys implements PublicKeySource {
  private readonly trusted: Map<string, string>;
  private readonly cache = new Map<string, Promise<KeyObject>>();

  constructor(
    private readonly kms: KMSClient,
    trustedKeys: readonly string[],
  ) {
    this.trusted = new Map(trustedKeys.map((key) => [keyIdOf(key), key]));
  }

  isTrusted(kid: string): boolean {
    return this.trusted.has(kid);
  }

  get(kid: string): Promise<KeyObject> {
    const key = this.trusted.get(kid);
    if (!key) return Promise.reject(new Error(`key ${kid} is not trusted`));
    let cached = this.cache.get(kid);
    if (!cached) {
      cached = this.fetch(key);
      this.cache.set(kid, cached);
      cached.catch(() => this.cache.delete(kid));
    }
    return cached;
  }

  private async fetch(key: string): Promise<KeyObject> {
    const response = await this.kms.send(new GetPublicKeyCommand({ KeyId: key }));
    if (response.KeySpec !== 'ECC_NIST_P256' || response.KeyUsage !== 'SIGN_VERIFY') {
      throw new Error(`KMS key ${key} is not an ECC_NIST_P256 signing key`);
    }
    return createPublicKey({ key: Buffer.from(response.PublicKey!), format: 'der', type: 'spki' });
  }
}
