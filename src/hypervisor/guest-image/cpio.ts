/**
 * Writer for the "newc" cpio format the Linux kernel unpacks as an initramfs.
 * Spec: https://www.kernel.org/doc/Documentation/early-userspace/buffer-format.txt
 */

export type CpioEntry =
  | { type: 'dir'; path: string; mode?: number }
  | { type: 'file'; path: string; data: Buffer; mode?: number }
  | { type: 'symlink'; path: string; target: string }
  | { type: 'chardev'; path: string; major: number; minor: number; mode?: number };

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;

function hex8(n: number): string {
  return n.toString(16).padStart(8, '0');
}

function pad4(len: number): Buffer {
  return Buffer.alloc((4 - (len % 4)) % 4);
}

function record(ino: number, name: string, mode: number, data: Buffer, rdevMajor = 0, rdevMinor = 0): Buffer[] {
  const nameBuf = Buffer.from(name + '\0');
  const header =
    '070701' +
    hex8(ino) +
    hex8(mode) +
    hex8(0) + // uid
    hex8(0) + // gid
    hex8(1) + // nlink
    hex8(0) + // mtime: fixed so builds are reproducible
    hex8(data.length) +
    hex8(0) + // dev major
    hex8(0) + // dev minor
    hex8(rdevMajor) +
    hex8(rdevMinor) +
    hex8(nameBuf.length) +
    hex8(0); // check
  const head = Buffer.from(header, 'ascii');
  return [head, nameBuf, pad4(head.length + nameBuf.length), data, pad4(data.length)];
}

/** Serialises entries in the given order; parents must precede their children. */
export function buildCpio(entries: CpioEntry[]): Buffer {
  const parts: Buffer[] = [];
  let ino = 1;
  for (const e of entries) {
    const name = e.path.replace(/^\/+/, '');
    if (!name || name.split('/').includes('..')) throw new Error(`invalid cpio path: ${e.path}`);
    switch (e.type) {
      case 'dir':
        parts.push(...record(ino++, name, S_IFDIR | (e.mode ?? 0o755), Buffer.alloc(0)));
        break;
      case 'file':
        parts.push(...record(ino++, name, S_IFREG | (e.mode ?? 0o644), e.data));
        break;
      case 'symlink':
        parts.push(...record(ino++, name, S_IFLNK | 0o777, Buffer.from(e.target)));
        break;
      case 'chardev':
        parts.push(...record(ino++, name, S_IFCHR | (e.mode ?? 0o600), Buffer.alloc(0), e.major, e.minor));
        break;
    }
  }
  parts.push(...record(0, 'TRAILER!!!', 0, Buffer.alloc(0)));
  return Buffer.concat(parts);
}

/** Parses a newc archive back into (path, mode, data) records; used to verify what we build. */
export function parseCpio(buf: Buffer): { path: string; mode: number; data: Buffer; rdevMajor: number; rdevMinor: number }[] {
  const out: { path: string; mode: number; data: Buffer; rdevMajor: number; rdevMinor: number }[] = [];
  let off = 0;
  const field = (i: number) => parseInt(buf.toString('ascii', off + 6 + i * 8, off + 14 + i * 8), 16);
  while (off < buf.length) {
    if (buf.toString('ascii', off, off + 6) !== '070701') throw new Error(`bad cpio magic at ${off}`);
    const mode = field(1);
    const size = field(6);
    const rdevMajor = field(9);
    const rdevMinor = field(10);
    const nameSize = field(11);
    const nameStart = off + 110;
    const path = buf.toString('utf8', nameStart, nameStart + nameSize - 1);
    let dataStart = nameStart + nameSize;
    dataStart += (4 - (dataStart % 4)) % 4;
    const data = buf.subarray(dataStart, dataStart + size);
    off = dataStart + size;
    off += (4 - (off % 4)) % 4;
    if (path === 'TRAILER!!!') break;
    out.push({ path, mode, data, rdevMajor, rdevMinor });
  }
  return out;
}
