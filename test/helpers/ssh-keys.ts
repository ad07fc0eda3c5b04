import type { KeyObject } from 'node:crypto';

/** An SSH wire-format `string`: a big-endian uint32 length, then the bytes. */
function sshString(bytes: Buffer): Buffer {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(bytes.length);
  return Buffer.concat([length, bytes]);
}

/** An ed25519 public key as an OpenSSH `.pub` line, built from node's key with no SSH tooling. */
export function openSshPublicKey(publicKey: KeyObject, comment: string): string {
  const raw = Buffer.from(publicKey.export({ format: 'jwk' }).x!, 'base64url');
  const blob = Buffer.concat([sshString(Buffer.from('ssh-ed25519')), sshString(raw)]);
  return `ssh-ed25519 ${blob.toString('base64')} ${comment}`;
}
