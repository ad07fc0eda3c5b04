import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ValidationError } from '#functions/core/errors.ts';
import { knownHostsLine, parseSshPublicKey } from '#functions/identity/ssh-public-keys.ts';
import { openSshPublicKey } from '../helpers/ssh-keys.ts';

describe('SSH public keys', () => {
  it('parses an ed25519 key line, drops the comment and fingerprints the blob', () => {
    const { publicKey } = generateKeyPairSync('ed25519');
    const line = openSshPublicKey(publicKey, 'root@vm');
    const key = parseSshPublicKey(line, 'keys.0');
    expect(key.keyType).toBe('ssh-ed25519');
    expect(`${key.keyType} ${key.base64} root@vm`).toBe(line);
    expect(key.fingerprint).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
    expect(knownHostsLine(['10.0.0.5'], key)).toBe(`10.0.0.5 ${line.replace(/ root@vm$/, '')}`);
  });

  it.each([
    ['', /must be an OpenSSH public key line/],
    ['ssh-dss AAAAB3NzaC1kc3MAAACBAP', /key type ssh-dss is not one of/],
    ['ssh-ed25519 !!!notbase64', /is not base64/],
    ['ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA==', /is not a ssh-ed25519 public key/],
    // A well-formed RSA blob under an ed25519 label.
    [
      `ssh-ed25519 ${Buffer.concat([Buffer.from([0, 0, 0, 7]), Buffer.from('ssh-rsa'), Buffer.alloc(300)]).toString('base64')}`,
      /is not a ssh-ed25519 public key/,
    ],
  ])('refuses %j', (line, message) => {
    expect(() => parseSshPublicKey(line, 'keys.0')).toThrow(ValidationError);
    expect(() => parseSshPublicKey(line, 'keys.0')).toThrow(message);
  });
});
