/**
 * A corpus of hostile guest disks, built at test time: what a root guest can put on its own disk
 * to attack the host that backs it up or restores into it. Each is a 32 MiB disk with an MBR and
 * one ext4 filesystem made from a directory (mkfs.ext4 -d, without metadata checksums so that
 * debugfs, which the old code used, reads the patched structures too); names no directory can
 * hold are then patched into the filesystem's directory entries in place (same length).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';

export const PART_OFFSET = 1024 * 1024;
const DISK_BYTES = 32 * 1024 * 1024;

export interface HostileDisk {
  name: string;
  path: string;
  sizeBytes: number;
  /** Host paths an attack would create or change: none may exist after any operation. */
  escapes: string[];
  /** The filesystem's UUID. */
  uuid: string;
}

/** A name patch: a placeholder of the same length in a directory entry, replaced by `name` (and, for a loop, the entry made to point at the root). */
interface Patch {
  placeholder: string;
  name: Buffer;
  loopToRoot?: boolean;
}

function patchImage(image: string, patches: Patch[]): void {
  const buf = readFileSync(image);
  for (const p of patches) {
    const ph = Buffer.from(p.placeholder);
    if (ph.length !== p.name.length) throw new Error(`placeholder ${p.placeholder} and its name differ in length`);
    // A directory entry: name_len, file_type, then the name.
    let found = -1;
    for (let i = buf.indexOf(ph); i >= 0; i = buf.indexOf(ph, i + 1)) {
      if (buf[i - 2] === ph.length) {
        if (found >= 0) throw new Error(`placeholder ${p.placeholder} is not unique in the image`);
        found = i;
      }
    }
    if (found < 0) throw new Error(`placeholder ${p.placeholder} not found in the image`);
    p.name.copy(buf, found);
    if (p.loopToRoot) {
      buf.writeUInt32LE(2, found - 8); // inode 2: the root directory
      buf[found - 1] = 2; // file type: directory
    }
  }
  writeFileSync(image, buf);
}

function makeDisk(path: string, src: string, uuid: string, patches: Patch[] = []): void {
  writeFileSync(path, '');
  truncateSync(path, DISK_BYTES);
  execFileSync('sfdisk', ['-q', path], { input: 'label: dos\nstart=2048, type=83\n' });
  execFileSync(
    'mkfs.ext4',
    ['-q', '-F', '-O', '^metadata_csum', '-b', '1024', '-U', uuid, '-E', `offset=${PART_OFFSET}`, '-d', src, path, `${(DISK_BYTES - PART_OFFSET) / 1024}k`],
    { stdio: 'ignore' },
  );
  patchImage(path, patches);
}

const uuid = () => {
  const h = randomBytes(16).toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20)}`;
};

/**
 * The corpus. `hostFile` is a host file an attack tries to read or copy into the guest; the
 * returned disks name the host paths their attacks would write.
 */
export function buildHostileDisks(dir: string, hostFile: string): HostileDisk[] {
  const tag = randomBytes(4).toString('hex');
  const escape = (what: string) => `/tmp/outrig-escape-${tag}-${what}`;
  const disks: HostileDisk[] = [];
  const src = (name: string) => {
    const d = join(dir, `src-${name}`);
    mkdirSync(join(d, 'etc'), { recursive: true });
    mkdirSync(join(d, 'boot'), { recursive: true });
    writeFileSync(join(d, 'etc', 'hostname'), `guest-${name}\n`);
    writeFileSync(join(d, 'etc', 'os-release'), 'ID=hostile\n');
    writeFileSync(join(d, 'boot', 'config'), 'boot\n');
    return d;
  };
  const add = (name: string, build: (d: string, id: string) => { escapes: string[]; patches?: Patch[] }) => {
    const d = src(name);
    const id = uuid();
    const { escapes, patches } = build(d, id);
    const path = join(dir, `${name}.raw`);
    makeDisk(path, d, id, patches);
    disks.push({ name, path, sizeBytes: DISK_BYTES, escapes, uuid: id });
  };

  // Names holding "/" and "..": a file that, written by its name, lands outside any directory.
  add('traversal', (d) => {
    const target = escape('traversal');
    const name = `${'../'.repeat(12)}${target.slice(1)}`;
    const ph = `T${'t'.repeat(name.length - 1)}`;
    writeFileSync(join(d, 'etc', ph), 'written outside the work directory\n');
    writeFileSync(join(d, 'Sx1'), 'a name with a slash\n');
    writeFileSync(join(d, 'Dd'), 'a second ".." entry\n');
    return {
      escapes: [target],
      patches: [
        { placeholder: ph, name: Buffer.from(name) },
        { placeholder: 'Sx1', name: Buffer.from('a/b') },
        { placeholder: 'Dd', name: Buffer.from('..') },
      ],
    };
  });

  // Control characters in names, and a symlink whose target carries debugfs commands: on a
  // restore of the system state (which holds /etc), they were run against the guest's disk.
  add('control', (d) => {
    const dumped = escape('dumped');
    symlinkSync(`x"\nwrite ${hostFile} /stolen\ndump /etc/hostname ${dumped}\nrm "y`, join(d, 'etc', 'evil'));
    writeFileSync(join(d, 'etc', 'NLq1"x\\'), 'a name with a newline\n');
    writeFileSync(join(d, 'etc', 'ESCq[2Jx'), 'a name with an escape sequence\n');
    return {
      escapes: [dumped],
      patches: [
        { placeholder: 'NLq1"x\\', name: Buffer.from('nl\n1"x\\') },
        { placeholder: 'ESCq[2Jx', name: Buffer.from('esc\x1b[2Jx') },
      ],
    };
  });

  // Symlinks that loop and that point out of the filesystem: /etc/fstab naming a host file whose
  // lines a reader that follows links would take for the guest's mounts.
  add('links', (d, id) => {
    symlinkSync('loop-b', join(d, 'loop-a'));
    symlinkSync('loop-a', join(d, 'loop-b'));
    symlinkSync('/etc', join(d, 'etc-out'));
    symlinkSync('../../../../../../..', join(d, 'up'));
    const fstab = join(dir, `host-fstab-${tag}`);
    writeFileSync(fstab, `UUID=${id} /leaked-from-host ext4 defaults 0 1\n`);
    symlinkSync(fstab, join(d, 'etc', 'fstab'));
    return { escapes: [] };
  });

  // A sparse file far larger than the filesystem: read back, it is gigabytes of zeros.
  add('sparse', (d) => {
    writeFileSync(join(d, 'bomb'), '');
    truncateSync(join(d, 'bomb'), 4 * 1024 ** 3);
    return { escapes: [] };
  });

  // A directory entry pointing back at the root: a walk that follows it never ends.
  add('loop', (d) => {
    mkdirSync(join(d, 'Lloop-to-root'));
    return { escapes: [], patches: [{ placeholder: 'Lloop-to-root', name: Buffer.from('Lloop-to-root'), loopToRoot: true }] };
  });

  // A superblock whose block size is impossible.
  add('corrupt', () => ({ escapes: [] }));
  const corrupt = disks.at(-1)!;
  const buf = readFileSync(corrupt.path);
  buf.writeUInt32LE(40, PART_OFFSET + 1024 + 0x18);
  writeFileSync(corrupt.path, buf);
  return disks;
}
