import { createHash } from 'node:crypto';
import { ValidationError } from '../core/errors.ts';

/** SSH host key algorithms accepted, with the public key size where it is fixed. */
const KEY_TYPES: Record<string, { minBytes: number }> = {
  'ssh-ed25519': { minBytes: 51 },
  'ecdsa-sha2-nistp256': { minBytes: 104 },
  'ecdsa-sha2-nistp384': { minBytes: 136 },
  'ecdsa-sha2-nistp521': { minBytes: 172 },
  'ssh-rsa': { minBytes: 275 },
};

export interface SshPublicKey {
  keyType: string;
  /** The key blob in SSH wire format, base64, as in a `.pub` file. */
  base64: string;
  /** `SHA256:...`, exactly as `ssh-keygen -lf` prints it. */
  fingerprint: string;
}

/**
 * Parses one OpenSSH public key line (`ssh-ed25519 AAAA... comment`) and checks that the blob is
 * well formed and names the same algorithm as the line. The comment is dropped: it is whatever the
 * VM chose to say and means nothing to anyone checking the key.
 */
export function parseSshPublicKey(line: string, field: string): SshPublicKey {
  const [keyType, base64] = line.trim().split(/\s+/);
  if (!keyType || !base64) throw new ValidationError(`${field}: must be an OpenSSH public key line such as "ssh-ed25519 AAAA..."`);
  const spec = KEY_TYPES[keyType];
  if (!spec) throw new ValidationError(`${field}: key type ${keyType} is not one of ${Object.keys(KEY_TYPES).join(', ')}`);
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(base64)) throw new ValidationError(`${field}: key data is not base64`);
  const blob = Buffer.from(base64, 'base64');
  if (blob.length < spec.minBytes || blob.length > 4096 || wireTypeOf(blob) !== keyType) {
    throw new ValidationError(`${field}: key data is not a ${keyType} public key`);
  }
  if (keyType === 'ssh-ed25519' && blob.length !== 51) throw new ValidationError(`${field}: an ssh-ed25519 key is 32 bytes`);
  return { keyType, base64: blob.toString('base64'), fingerprint: fingerprintOf(blob) };
}

/** The algorithm name a key blob starts with (an SSH `string`: uint32 length, then bytes). */
function wireTypeOf(blob: Buffer): string | undefined {
  const length = blob.readUInt32BE(0);
  return length > 0 && length < 64 && blob.length >= 4 + length ? blob.subarray(4, 4 + length).toString('latin1') : undefined;
}

export function fingerprintOf(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

/** A known_hosts line for the VM's address: `10.0.0.5 ssh-ed25519 AAAA...`. */
export function knownHostsLine(hosts: readonly string[], key: Pick<SshPublicKey, 'keyType' | 'base64'>): string {
  return `${hosts.join(',')} ${key.keyType} ${key.base64}`;
}
