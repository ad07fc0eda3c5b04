import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import type https from 'node:https';

/** A certificate and its key, read from the operator's files and checked to belong together. */
interface Loaded {
  cert: string;
  key: string;
  modifiedAt: number;
}

/**
 * The bid relay's TLS certificate (`--bid-relay-tls-cert` and `--bid-relay-tls-key`, PEM): exchange
 * tokens are bearer tokens, and on an underlay others can watch they travel only in TLS. The files
 * are checked at most once a second once the relay listens, and a changed pair is used for new
 * connections at once (a renewed certificate needs no restart); a pair that turns bad is logged
 * and the one before kept. At start a bad pair stops the agent.
 */
export class RelayCertificate {
  private loaded: Loaded;
  private watch: NodeJS.Timeout | undefined;

  constructor(
    readonly certFile: string,
    readonly keyFile: string,
    private readonly log: (message: string) => void = () => {},
  ) {
    this.loaded = this.read();
  }

  /** What an HTTPS server needs: the pair, TLS 1.2 at least. */
  serverOptions(): https.ServerOptions {
    return { cert: this.loaded.cert, key: this.loaded.key, minVersion: 'TLSv1.2' };
  }

  /** Follows changes of the files for `server` from now on. */
  follow(server: https.Server): void {
    clearInterval(this.watch);
    this.watch = setInterval(() => this.reload(server), 1000);
    this.watch.unref();
  }

  stop(): void {
    clearInterval(this.watch);
  }

  private reload(server: https.Server): void {
    let modifiedAt: number;
    try {
      modifiedAt = Math.max(statSync(this.certFile).mtimeMs, statSync(this.keyFile).mtimeMs);
    } catch {
      return;
    }
    if (modifiedAt === this.loaded.modifiedAt) return;
    try {
      this.loaded = this.read();
      server.setSecureContext(this.serverOptions());
      this.log(`bid relay: TLS certificate ${this.certFile} loaded again (valid to ${new X509Certificate(this.loaded.cert).validTo})`);
    } catch (error) {
      this.loaded.modifiedAt = modifiedAt;
      this.log(`bid relay: ${(error as Error).message}; the certificate loaded before is kept`);
    }
  }

  private read(): Loaded {
    const modifiedAt = Math.max(statSync(this.certFile).mtimeMs, statSync(this.keyFile).mtimeMs);
    const cert = readFileSync(this.certFile, 'utf8');
    const key = readFileSync(this.keyFile, 'utf8');
    let certificate: X509Certificate;
    try {
      certificate = new X509Certificate(cert);
    } catch (error) {
      throw new Error(`${this.certFile} is not a PEM certificate (${(error as Error).message})`);
    }
    let privateKey: ReturnType<typeof createPrivateKey>;
    try {
      privateKey = createPrivateKey(key);
    } catch (error) {
      throw new Error(`${this.keyFile} is not a PEM private key (${(error as Error).message})`);
    }
    if (!certificate.checkPrivateKey(privateKey)) throw new Error(`${this.keyFile} is not the key of ${this.certFile}`);
    return { cert, key, modifiedAt };
  }
}
