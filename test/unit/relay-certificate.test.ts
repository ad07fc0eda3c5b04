import { X509Certificate } from 'node:crypto';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { RelayCertificate } from '#host-agent/relay-certificate.ts';
import { makeTestCertificates } from '../helpers/test-ca.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'relay-certificate-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A certificate for 127.0.0.1 (each from a CA of its own), and its key. */
function pair(): { cert: string; key: string } {
  const { certFile, keyFile } = makeTestCertificates(['127.0.0.1']);
  return { cert: certFile, key: keyFile };
}

/** The fingerprint of the certificate a TLS server at `port` presents now. */
const presented = (port: number) =>
  new Promise<string>((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
      resolve(socket.getPeerX509Certificate()!.fingerprint256);
      socket.destroy();
    });
    socket.on('error', reject);
  });

describe('the bid relay’s TLS certificate', () => {
  it('refuses at start a key that is not the certificate’s, and files that are not PEM', () => {
    const [one, two] = [pair(), pair()];
    expect(() => new RelayCertificate(one.cert, two.key)).toThrow(/is not the key of/);
    const garbage = path.join(dir, 'garbage.pem');
    writeFileSync(garbage, 'not a certificate');
    expect(() => new RelayCertificate(garbage, one.key)).toThrow(/is not a PEM certificate/);
    expect(() => new RelayCertificate(one.cert, garbage)).toThrow(/is not a PEM private key/);
    expect(() => new RelayCertificate(one.cert, one.key)).not.toThrow();
  });

  it('serves a renewed certificate within seconds, without a restart; a broken renewal keeps the one before', async () => {
    const live = { cert: path.join(dir, 'live.crt'), key: path.join(dir, 'live.key') };
    const [first, second] = [pair(), pair()];
    copyFileSync(first.cert, live.cert);
    copyFileSync(first.key, live.key);
    const logged: string[] = [];
    const certificate = new RelayCertificate(live.cert, live.key, (message) => logged.push(message));
    const server = https.createServer(certificate.serverOptions(), (_, response) => response.end());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    certificate.follow(server);
    const port = (server.address() as AddressInfo).port;
    const fingerprint = (file: string) => new X509Certificate(readFileSync(file)).fingerprint256;
    try {
      expect(await presented(port)).toBe(fingerprint(first.cert));
      copyFileSync(second.key, live.key);
      copyFileSync(second.cert, live.cert);
      await vi.waitFor(async () => expect(await presented(port)).toBe(fingerprint(second.cert)), { timeout: 5_000, interval: 200 });
      writeFileSync(live.cert, 'broken');
      await vi.waitFor(() => expect(logged.at(-1)).toMatch(/the certificate loaded before is kept/), { timeout: 5_000, interval: 200 });
      expect(await presented(port)).toBe(fingerprint(second.cert));
    } finally {
      certificate.stop();
      server.close();
    }
  });
});
