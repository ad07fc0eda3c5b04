import { X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checkMigrationCertificate } from '#functions/compute/migration-certificates.ts';
import { MigrationIdentity } from '#host-agent/vm-runtime/migration-tls.ts';

const root = mkdtempSync(path.join(tmpdir(), 'migration-tls-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const certificatesIn = (file: string) =>
  (readFileSync(file, 'utf8').match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []).map((pem) => new X509Certificate(pem));

describe('a host’s TLS identity in live migrations', () => {
  it('is its own CA and a certificate it signed for its underlay address, as QEMU’s GnuTLS wants them; keys readable by the agent only', async () => {
    const dir = path.join(root, 'host-a');
    const identity = await MigrationIdentity.open(dir, 'host-a', '198.51.100.7');
    const ca = new X509Certificate(identity.caCertificate);
    const own = new X509Certificate(readFileSync(path.join(dir, 'cert.pem')));
    expect(ca.ca).toBe(true);
    expect(own.ca).toBe(false);
    expect(own.checkIssued(ca)).toBe(true);
    expect(own.verify(ca.publicKey)).toBe(true);
    expect(own.checkIP('198.51.100.7')).toBe('198.51.100.7');
    expect(own.checkIP('198.51.100.8')).toBeUndefined();
    expect(own.keyUsage).toEqual(expect.arrayContaining(['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']));
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    for (const key of ['ca-key.pem', 'key.pem']) expect(statSync(path.join(dir, key)).mode & 0o777).toBe(0o600);
  });

  it('is kept across restarts; a new address gets a new certificate from the same CA', async () => {
    const dir = path.join(root, 'host-b');
    const first = await MigrationIdentity.open(dir, 'host-b', '198.51.100.9');
    const certificate = readFileSync(path.join(dir, 'cert.pem'), 'utf8');
    const again = await MigrationIdentity.open(dir, 'host-b', '198.51.100.9');
    expect(again.caCertificate).toBe(first.caCertificate);
    expect(readFileSync(path.join(dir, 'cert.pem'), 'utf8')).toBe(certificate);
    const moved = await MigrationIdentity.open(dir, 'host-b', '198.51.100.10');
    expect(moved.caCertificate).toBe(first.caCertificate);
    expect(new X509Certificate(readFileSync(path.join(dir, 'cert.pem'))).checkIP('198.51.100.10')).toBe('198.51.100.10');
    // Renewed a month before it ends.
    await MigrationIdentity.open(dir, 'host-b', '198.51.100.10', Date.now() + 340 * 24 * 3600_000);
    expect(readFileSync(path.join(dir, 'cert.pem'), 'utf8')).not.toBe(certificate);
  });

  it('gives each move credentials that trust its own CA and the peer’s, no other, and takes them away after', async () => {
    const source = await MigrationIdentity.open(path.join(root, 'source'), 'source', '198.51.100.11');
    const destination = await MigrationIdentity.open(path.join(root, 'destination'), 'destination', '198.51.100.12');
    const server = await destination.credentialsFor('mig-0000000000a1', 'server', source.caCertificate);
    const client = await source.credentialsFor('mig-0000000000a1', 'client', destination.caCertificate);
    const fingerprints = (file: string) => certificatesIn(file).map((certificate) => certificate.fingerprint256);
    const fingerprintOf = (pem: string) => new X509Certificate(pem).fingerprint256;
    expect(fingerprints(path.join(server, 'ca-cert.pem'))).toEqual([fingerprintOf(destination.caCertificate), fingerprintOf(source.caCertificate)]);
    expect(fingerprints(path.join(client, 'ca-cert.pem'))).toEqual([fingerprintOf(source.caCertificate), fingerprintOf(destination.caCertificate)]);
    expect(existsSync(path.join(server, 'server-key.pem')) && existsSync(path.join(server, 'server-cert.pem'))).toBe(true);
    expect(existsSync(path.join(client, 'client-key.pem')) && existsSync(path.join(client, 'client-cert.pem'))).toBe(true);
    // A host's own certificate is no CA: a peer that sent one in its place is refused, not trusted as a CA.
    const leaf = readFileSync(path.join(root, 'source', 'cert.pem'), 'utf8');
    await expect(destination.credentialsFor('mig-0000000000a2', 'server', leaf)).rejects.toThrow(/not a CA certificate/);
    await destination.release('mig-0000000000a1');
    expect(existsSync(server)).toBe(false);
  });
});

describe('the control plane’s check of a registered migration certificate', () => {
  it('takes a host’s CA certificate with liveMigration, and refuses none, garbage, a certificate that is no CA, one not valid now, or one without liveMigration', async () => {
    const identity = await MigrationIdentity.open(path.join(root, 'registering'), 'registering', '198.51.100.13');
    const leaf = readFileSync(path.join(root, 'registering', 'cert.pem'), 'utf8');
    expect(() => checkMigrationCertificate({ liveMigration: true, migrationCertificate: identity.caCertificate })).not.toThrow();
    expect(() => checkMigrationCertificate({})).not.toThrow();
    expect(() => checkMigrationCertificate({ liveMigration: true })).toThrow(/must register its migration CA certificate/);
    expect(() =>
      checkMigrationCertificate({ liveMigration: true, migrationCertificate: '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n' }),
    ).toThrow(/not a certificate/);
    expect(() => checkMigrationCertificate({ liveMigration: true, migrationCertificate: leaf })).toThrow(/not a CA certificate/);
    expect(() =>
      checkMigrationCertificate({ liveMigration: true, migrationCertificate: identity.caCertificate }, Date.now() + 11 * 365 * 24 * 3600_000),
    ).toThrow(/not valid now/);
    expect(() => checkMigrationCertificate({ migrationCertificate: identity.caCertificate })).toThrow(/only a host that moves guests live/);
  });
});
