import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, copyFile, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** A host's migration CA lives ten years; the certificate it signs for the host, one (made again 30 days before it ends). */
const CA_DAYS = 3650;
const CERTIFICATE_DAYS = 365;
const RENEW_BEFORE_MS = 30 * 24 * 3600_000;

/** The files QEMU's `tls-creds-x509` reads from its directory, per end of the connection. */
const QEMU_FILES = {
  server: { certificate: 'server-cert.pem', key: 'server-key.pem' },
  client: { certificate: 'client-cert.pem', key: 'client-key.pem' },
} as const;

/**
 * A host's identity in live migrations: guests' memory and disks cross the underlay in TLS, and
 * each end proves it is the host the control plane named. Each host makes its own CA (its key
 * never leaves the host) and, signed by it, a certificate for its underlay address; it registers
 * the CA's certificate with the control plane, which hands each end of a migration the other's.
 * A migration's credentials trust exactly two CAs, the host's own (QEMU checks its own certificate
 * against the same file) and the peer's: no other host, and no certificate a public CA signed,
 * can send a guest here or receive one from here. Made with the OpenSSL CLI, as QEMU's GnuTLS wants
 * them: the CA marked a CA that signs certificates, the host's certificate not a CA, for TLS
 * servers and clients, its underlay address its subject alternative name.
 */
export class MigrationIdentity {
  private constructor(
    private readonly dir: string,
    /** The CA's certificate (PEM): what the host registers. */
    readonly caCertificate: string,
  ) {}

  /**
   * The identity kept in `dir` (mode 0700), made the first time, its host certificate made again
   * when it nears its end or names another address. A CA that cannot be read is made again: the
   * next registration tells the control plane.
   */
  static async open(dir: string, hostId: string, address: string, now = Date.now()): Promise<MigrationIdentity> {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await chmod(dir, 0o700);
    const file = (name: string) => path.join(dir, name);
    if (!(await readCertificate(file('ca-cert.pem'))) || !existsSync(file('ca-key.pem'))) {
      await openssl(dir, [
        'req',
        '-x509',
        ...EC_KEY,
        '-keyout',
        'ca-key.pem',
        '-out',
        'ca-cert.pem',
        '-days',
        String(CA_DAYS),
        '-subj',
        `/CN=stratoplane host ${hostId} migration CA`,
        '-addext',
        'basicConstraints=critical,CA:TRUE,pathlen:0',
        '-addext',
        'keyUsage=critical,keyCertSign,cRLSign',
      ]);
      await rm(file('cert.pem'), { force: true });
    }
    const current = await readCertificate(file('cert.pem'));
    if (!current?.checkIP(address) || Date.parse(current.validTo) - now < RENEW_BEFORE_MS || !existsSync(file('key.pem'))) {
      await openssl(dir, ['req', ...EC_KEY, '-keyout', 'key.pem', '-out', 'cert.csr', '-subj', `/CN=stratoplane host ${hostId}`]);
      // No key usage extension: QEMU 10.0 wants key encipherment in it, which an EC key does not do.
      await writeFile(file('cert.ext'), `basicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=IP:${address}\n`);
      await openssl(dir, [
        'x509',
        '-req',
        '-in',
        'cert.csr',
        '-CA',
        'ca-cert.pem',
        '-CAkey',
        'ca-key.pem',
        '-set_serial',
        `0x${Date.now().toString(16)}`,
        '-days',
        String(CERTIFICATE_DAYS),
        '-extfile',
        'cert.ext',
        '-out',
        'cert.pem',
      ]);
      await rm(file('cert.csr'), { force: true });
    }
    await Promise.all(['ca-key.pem', 'key.pem'].map((name) => chmod(file(name), 0o600)));
    return new MigrationIdentity(dir, await readFile(file('ca-cert.pem'), 'utf8'));
  }

  /**
   * The credentials of one migration, for QEMU's `tls-creds-x509` at one `end` (the destination
   * is the server): a directory under the identity's holding the host's certificate and key, and
   * the CAs it trusts, its own and the peer host's `peerCa`. Removed with `release` once the
   * migration ended.
   */
  async credentialsFor(name: string, end: 'server' | 'client', peerCa: string): Promise<string> {
    const peer = new X509Certificate(peerCa);
    if (!peer.ca) throw new Error("the peer host's migration certificate is not a CA certificate");
    const dir = path.join(this.dir, 'migrations', name);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const files = QEMU_FILES[end];
    await writeFile(path.join(dir, 'ca-cert.pem'), `${this.caCertificate.trim()}\n${peerCa.trim()}\n`);
    await copyFile(path.join(this.dir, 'cert.pem'), path.join(dir, files.certificate));
    await copyFile(path.join(this.dir, 'key.pem'), path.join(dir, files.key));
    await chmod(path.join(dir, files.key), 0o600);
    return dir;
  }

  /** Removes a migration's credentials. */
  async release(name: string): Promise<void> {
    await rm(path.join(this.dir, 'migrations', name), { recursive: true, force: true });
  }
}

const EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

async function readCertificate(file: string): Promise<X509Certificate | undefined> {
  try {
    return new X509Certificate(await readFile(file));
  } catch {
    return undefined;
  }
}

async function openssl(cwd: string, args: string[]): Promise<void> {
  try {
    await run('openssl', args, { cwd });
  } catch (error) {
    const said = ((error as { stderr?: string }).stderr ?? (error as Error).message).trim();
    throw new Error(`cannot make the host's live-migration certificates with openssl ${args[0]}: ${said}`);
  }
}
