import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ImageCache, type ImageSource } from '../../host-agent/image-cache.ts';

const content = Buffer.alloc(3 * 1024 * 1024, 'stratoplane');
const sha256 = createHash('sha256').update(content).digest('hex');
// Compared by hash: toEqual walks a 3 MB buffer byte by byte for seconds.
const hashOf = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

describe('image cache', () => {
  let server: http.Server;
  let base: string;
  let requests = 0;
  let dir: string;
  /** What the server sends for /image: the real content unless a test says otherwise. */
  let body: Buffer = content;

  beforeAll(async () => {
    server = http.createServer((request, response) => {
      requests++;
      if (request.url !== '/image') return void response.writeHead(404).end();
      // Slow enough that concurrent launches overlap.
      setTimeout(() => response.writeHead(200, { 'content-length': body.length }).end(body), 100);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise((resolve) => server.close(resolve)));
  afterEach(() => {
    requests = 0;
    body = content;
    rmSync(dir, { recursive: true, force: true });
  });

  const source = (overrides: Partial<ImageSource> = {}): ImageSource => ({
    imageId: 'img-000000000001',
    sha256,
    sizeBytes: content.length,
    url: `${base}/image`,
    ...overrides,
  });
  const cache = () => {
    dir = mkdtempSync(path.join(tmpdir(), 'image-cache-'));
    return new ImageCache({ dir });
  };

  it('downloads an image once for many launches at the same moment, and keeps it for the next', async () => {
    const images = cache();
    const files = await Promise.all(Array.from({ length: 8 }, () => images.get(source())));
    expect(new Set(files).size).toBe(1);
    expect(requests).toBe(1);
    expect(hashOf(files[0]!)).toBe(sha256);
    expect(await images.get(source())).toBe(files[0]);
    expect(requests).toBe(1);
  });

  it('refuses content whose hash or size is not what the image was registered with, and keeps nothing of it', async () => {
    const images = cache();
    body = Buffer.from(content).fill('x', 0, 10);
    await expect(images.get(source())).rejects.toThrow(/content has SHA-256 [0-9a-f]{64}, registered with/);
    body = content.subarray(0, 1000);
    await expect(images.get(source())).rejects.toThrow(/1000 bytes, registered with 3145728/);
    body = Buffer.concat([content, Buffer.from('more')]);
    await expect(images.get(source())).rejects.toThrow(/more than the 3145728 bytes/);
    expect(readdirSync(dir)).toEqual([]);
    // The next launch downloads again, and gets the real thing.
    body = content;
    expect(hashOf(await images.get(source()))).toBe(sha256);
  });

  it('says why a download failed, and refuses a hash that could name a path', async () => {
    const images = cache();
    await expect(images.get(source({ url: `${base}/missing` }))).rejects.toThrow(/img-000000000001: the download answered 404/);
    await expect(images.get(source({ sha256: '../../etc/passwd' }))).rejects.toThrow(/is not a SHA-256/);
    expect(existsSync(path.join(dir, '..', '..', 'etc', 'passwd.img'))).toBe(false);
  });
});
