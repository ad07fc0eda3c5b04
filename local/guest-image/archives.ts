/**
 * Deterministic archive writers for the guest image: the same entries give the same bytes (no
 * timestamps, owners or inode numbers from the machine that built them), so an image's SHA-256
 * says which packages and recipe went into it.
 */

export interface ArchiveEntry {
  /** Relative path, `/`-separated, no leading slash. */
  path: string;
  kind: 'file' | 'directory' | 'symlink' | 'chardev';
  /** Permission bits, e.g. 0o755. */
  mode: number;
  /** A file's content. */
  data?: Buffer;
  /** A symlink's target. */
  target?: string;
  /** A device node's numbers. */
  major?: number;
  minor?: number;
}

const typeBits = { file: 0o100000, directory: 0o040000, symlink: 0o120000, chardev: 0o020000 } as const;

const byPath = (a: ArchiveEntry, b: ArchiveEntry) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0);

function pad(length: number, to: number): Buffer {
  return Buffer.alloc((to - (length % to)) % to);
}

/** A `newc` cpio archive, as the kernel unpacks an initramfs: entries sorted, every inode field fixed. */
export function cpioNewc(entries: readonly ArchiveEntry[]): Buffer {
  const parts: Buffer[] = [];
  const add = (name: string, mode: number, data: Buffer, inode: number, device: { major?: number; minor?: number } = {}) => {
    const nameBytes = Buffer.from(`${name}\0`);
    // ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor, rdevmajor, rdevminor, namesize, check
    const fields = [inode, mode, 0, 0, 1, 0, data.length, 0, 0, device.major ?? 0, device.minor ?? 0, nameBytes.length, 0];
    const header = Buffer.from(`070701${fields.map((field) => field.toString(16).padStart(8, '0')).join('')}`, 'ascii');
    parts.push(header, nameBytes, pad(header.length + nameBytes.length, 4), data, pad(data.length, 4));
  };
  [...entries].sort(byPath).forEach((entry, index) => {
    const data = entry.kind === 'symlink' ? Buffer.from(entry.target!) : (entry.data ?? Buffer.alloc(0));
    add(entry.path, typeBits[entry.kind] | entry.mode, data, index + 1, entry);
  });
  add('TRAILER!!!', 0, Buffer.alloc(0), 0);
  return Buffer.concat(parts);
}

/** A POSIX ustar archive of plain files, owned by root, dated 1970: what an image bundle holds. */
export function ustar(files: readonly { path: string; mode: number; data: Buffer }[]): Buffer {
  const parts: Buffer[] = [];
  for (const file of [...files].sort((a, b) => (a.path < b.path ? -1 : 1))) {
    if (Buffer.byteLength(file.path) > 100) throw new Error(`${file.path}: a ustar name holds at most 100 bytes`);
    const header = Buffer.alloc(512);
    const octal = (value: number, width: number) => value.toString(8).padStart(width - 1, '0');
    header.write(file.path, 0, 100, 'utf8');
    header.write(octal(file.mode, 8), 100, 8, 'ascii');
    header.write(octal(0, 8), 108, 8, 'ascii');
    header.write(octal(0, 8), 116, 8, 'ascii');
    header.write(octal(file.data.length, 12), 124, 12, 'ascii');
    header.write(octal(0, 12), 136, 12, 'ascii');
    header.write('        ', 148, 8, 'ascii');
    header.write('0', 156, 1, 'ascii');
    header.write('ustar\u000000', 257, 8, 'ascii');
    header.write('root', 265, 32, 'ascii');
    header.write('root', 297, 32, 'ascii');
    let checksum = 0;
    for (const byte of header) checksum += byte;
    header.write(`${octal(checksum, 7)}\0 `, 148, 8, 'ascii');
    parts.push(header, file.data, pad(file.data.length, 512));
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}
