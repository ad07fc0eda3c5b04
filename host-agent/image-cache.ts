import { createHash } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';

/** Where an image's content is, and what it must be: what the control plane tells a host about an image. */
export interface ImageSource {
  imageId: string;
  /** SHA-256 of the content, lowercase hex: the cache's key and the check of every download. */
  sha256: string;
  sizeBytes: number;
  /** A short-lived GET URL (presigned) for the content in the host's region. */
  url: string;
}

export class ImageFetchError extends Error {
  override readonly name = 'ImageFetchError';
}

const SHA256 = /^[0-9a-f]{64}$/;

/**
 * One copy of each image a host boots, by content hash: downloaded once however many VMs launch
 * from it at the same moment, checked against its SHA-256 and size before anything uses it, and
 * kept for the next launch. A download that fails or does not match leaves nothing behind.
 */
export class ImageCache {
  private readonly inFlight = new Map<string, Promise<string>>();
  /** Downloads started, and launches served from a copy already here or on its way. */
  readonly stats = { downloads: 0, hits: 0 };

  constructor(private readonly options: { dir: string; fetch?: typeof fetch; timeoutMs?: number }) {
    mkdirSync(options.dir, { recursive: true, mode: 0o700 });
  }

  /** The image's file on this host, downloaded first if it is not here yet. */
  get(source: ImageSource): Promise<string> {
    if (!SHA256.test(source.sha256)) return Promise.reject(new ImageFetchError(`image ${source.imageId}: ${JSON.stringify(source.sha256)} is not a SHA-256`));
    const file = path.join(this.options.dir, `${source.sha256}.img`);
    if (existsSync(file) && statSync(file).size === source.sizeBytes) {
      this.stats.hits++;
      return Promise.resolve(file);
    }
    let download = this.inFlight.get(source.sha256);
    if (download) this.stats.hits++;
    else {
      this.stats.downloads++;
      download = this.download(source, file).finally(() => this.inFlight.delete(source.sha256));
      this.inFlight.set(source.sha256, download);
    }
    return download;
  }

  /** How many downloads are running (one per image however many launches wait on it). */
  get downloading(): number {
    return this.inFlight.size;
  }

  private async download(source: ImageSource, file: string): Promise<string> {
    const partial = `${file}.${process.pid}.${Date.now()}.partial`;
    try {
      const response = await (this.options.fetch ?? fetch)(source.url, { signal: AbortSignal.timeout(this.options.timeoutMs ?? 10 * 60_000) });
      if (!response.ok || !response.body) throw new ImageFetchError(`image ${source.imageId}: the download answered ${response.status}`);
      const hash = createHash('sha256');
      let received = 0;
      const counted = new Transform({
        transform(chunk: Buffer, _encoding, callback) {
          received += chunk.length;
          if (received > source.sizeBytes)
            return callback(new ImageFetchError(`image ${source.imageId}: more than the ${source.sizeBytes} bytes it was registered with`));
          hash.update(chunk);
          callback(null, chunk);
        },
      });
      await pipeline(
        Readable.fromWeb(response.body as import('node:stream/web').ReadableStream<Uint8Array>),
        counted,
        createWriteStream(partial, { mode: 0o600 }),
      );
      if (received !== source.sizeBytes) throw new ImageFetchError(`image ${source.imageId}: ${received} bytes, registered with ${source.sizeBytes}`);
      const actual = hash.digest('hex');
      if (actual !== source.sha256) throw new ImageFetchError(`image ${source.imageId}: content has SHA-256 ${actual}, registered with ${source.sha256}`);
      renameSync(partial, file);
      return file;
    } catch (error) {
      rmSync(partial, { force: true });
      if (error instanceof ImageFetchError) throw error;
      throw new ImageFetchError(`image ${source.imageId}: download failed: ${(error as Error).message}`);
    }
  }
}
