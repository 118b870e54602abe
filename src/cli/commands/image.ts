import { createReadStream } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { dataRoot } from '../../common/paths.ts';
import { buildTestGuest, type GuestImageManifest } from '../../hypervisor/index.ts';
import { NAME_PATTERN, NAME_RULE } from '../../model/common.ts';
import type { Image, ImageSpec } from '../../model/image.ts';
import { ApiRequestError, type ApiClient } from '../client.ts';
import { contextOf } from '../context.ts';
import { CliError } from '../errors.ts';
import { age, printDetails, printJson, printTable } from '../output.ts';

/** Where `image build-test` keeps its build, so later runs reuse it. */
export function testImageDir(): string {
  return join(dataRoot(), 'cache', 'test-image');
}

/**
 * Registers an image with the controller and uploads its files (local paths by file key).
 * Idempotent: an image with the same name and checksums is left as it is; a different one is
 * replaced only if `replace` is set.
 */
async function uploadImage(
  api: ApiClient,
  image: { name: string; labels?: Record<string, string>; spec: ImageSpec },
  paths: Partial<Record<string, string>>,
  opts: { replace?: boolean; log?: (s: string) => void } = {},
): Promise<Image> {
  const log = opts.log ?? (() => undefined);
  let img = await api.find<Image>(`/v1/images/${image.name}`);
  if (img && JSON.stringify(img.spec.files) !== JSON.stringify(image.spec.files)) {
    if (!opts.replace) throw new CliError(`image ${image.name} is already registered with other files; use --replace to replace it`);
    log(`replacing image ${image.name}`);
    await api.delete(`/v1/images/${img.id}`);
    img = undefined;
  }
  if (!img) img = await api.post<Image>('/v1/images', image);
  for (const [file, ref] of Object.entries(image.spec.files as Record<string, { size: number }>)) {
    if (img.status.filesPresent.includes(file)) continue;
    log(`uploading ${file} (${(ref.size / 1e6).toFixed(1)} MB)`);
    const res = await api.raw('PUT', `/v1/images/${img.id}/files/${file}`, {
      headers: { 'content-type': 'application/octet-stream' },
      rawBody: createReadStream(paths[file]!),
      duplex: 'half',
    });
    const body = (await res.json()) as Image & { error?: { code: string; message: string } };
    if (!res.ok) throw new ApiRequestError(res.status, body.error?.code ?? 'http_error', body.error?.message ?? `HTTP ${res.status}`);
    img = body;
  }
  return img;
}

/** Registers the test guest built by buildTestGuest. */
export function registerImage(api: ApiClient, dir: string, m: GuestImageManifest, opts: { replace?: boolean; log?: (s: string) => void } = {}): Promise<Image> {
  return uploadImage(
    api,
    {
      name: m.name,
      labels: { 'outrig.io/source': 'build-test', 'outrig.io/kernel': m.kernelVersion },
      spec: {
        kind: 'kernel',
        cmdline: m.cmdline,
        readyMarker: m.readyMarker,
        guestPorts: m.guestPorts,
        files: { kernel: { sha256: m.files.kernel.sha256, size: m.files.kernel.size }, initrd: { sha256: m.files.initrd.sha256, size: m.files.initrd.size } },
      },
    },
    { kernel: join(dir, m.files.kernel.name), initrd: join(dir, m.files.initrd.name) },
    opts,
  );
}

/**
 * Converts a raw or qcow2 image into an Outrig disk (qemu-img writing onto an NBD export of a fresh
 * disk, zero regions skipped), snapshots it as 'base', and returns the file and its checksum. The
 * image may come from anywhere (a guest's disk): its format is read from its header here, never
 * probed, and qemu-img runs confined, sees only the image and the socket, and opens no backing file.
 */
export async function convertToOutrigDisk(
  src: string,
  dest: string,
  opts: { format?: string; rawDespiteHeader?: boolean; progress?: boolean } = {},
): Promise<{ virtualSizeBytes: number; sha256: string; size: number }> {
  const { createHash } = await import('node:crypto');
  const { stat, rm } = await import('node:fs/promises');
  const { realpathSync } = await import('node:fs');
  const { DiskEngine, DiskExports, NbdServer } = await import('../../disk/index.ts');
  const { inspectImage } = await import('../../guest-disk/index.ts');
  const { runConfined } = await import('../../sandbox/index.ts');
  let info;
  try {
    info = inspectImage(src, opts.format, { rawDespiteHeader: opts.rawDespiteHeader });
  } catch (e) {
    throw new CliError(`${src}: ${(e as Error).message}`);
  }
  const virtualSizeBytes = Math.ceil(info.virtualSizeBytes / 512) * 512;
  DiskEngine.create(dest, { size: virtualSizeBytes });
  const engine = await DiskEngine.open(dest);
  const exports = new DiskExports();
  exports.add('import', engine);
  const server = new NbdServer({ exports });
  const sock = `${dest}.sock`;
  const file = realpathSync(src);
  // Explicit driver, and no backing image whatever the header says.
  const source = `json:${JSON.stringify({ driver: info.format, file: { driver: 'file', filename: file }, ...(info.format === 'qcow2' ? { backing: null } : {}) })}`;
  try {
    await server.listen(sock);
    await runConfined(
      'qemu-img',
      ['convert', ...(opts.progress ? ['-p'] : []), '-n', '--target-is-zero', '-O', 'raw', source, `nbd+unix:///import?socket=${sock}`],
      {
        identity: 'reader',
        readable: [file],
        writable: [sock],
        timeoutMs: 6 * 3600_000,
        onStdout: opts.progress ? (d) => process.stderr.write(d) : undefined,
        what: 'qemu-img convert',
      },
    ).catch((e: Error) => {
      throw new CliError(e.message);
    });
    await engine.flush();
    await engine.createSnapshot('base');
  } catch (e) {
    await server.close();
    await engine.close();
    await rm(dest, { force: true });
    throw e;
  }
  await server.close();
  await engine.close();
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(dest)) hash.update(chunk as Buffer);
  return { virtualSizeBytes, sha256: hash.digest('hex'), size: (await stat(dest)).size };
}

export function imageCommands(program: Command): void {
  const image = program.command('image').description('boot images for instances');

  image
    .command('list')
    .description('list images')
    .action(async (_o, cmd: Command) => {
      const { api, json } = contextOf(cmd);
      const { items } = await api.get<{ items: Image[] }>('/v1/images');
      if (json) return printJson(items);
      printTable(
        ['NAME', 'ID', 'PHASE', 'KIND', 'SIZE', 'SHA256', 'AGE'],
        items.map((i) => {
          const files = Object.values(i.spec.files as Record<string, { sha256: string; size: number }>);
          return [
            i.name,
            i.id,
            i.status.phase,
            i.spec.kind,
            `${(files.reduce((n, f) => n + f.size, 0) / 1e6).toFixed(1)} MB`,
            files[0]!.sha256.slice(0, 12),
            age(i.createdAt),
          ];
        }),
      );
    });

  image
    .command('show <image>')
    .description('show an image')
    .action(async (ref: string, _o, cmd: Command) => {
      const { api, json } = contextOf(cmd);
      const i = await api.get<Image>(`/v1/images/${encodeURIComponent(ref)}`);
      if (json) return printJson(i);
      printDetails({
        name: i.name,
        id: i.id,
        phase: i.status.phase,
        spec: i.spec,
        filesPresent: i.status.filesPresent,
        labels: i.labels,
        createdAt: i.createdAt,
      });
    });

  image
    .command('build-test')
    .description('build the tiny test guest (Debian kernel + busybox initramfs) and register it as image "test"')
    .option('--force', 'rebuild even if a build is cached')
    .option('--replace', 'replace a registered "test" image that has different files')
    .option('--no-register', 'only build; print where the files are')
    .option('--disk', 'build a bootable disk (GRUB, ext4) instead, imported as image "test-disk"')
    .option('--output <file>', 'with --disk: write the raw disk here (a disk to try `image import` and backups with)')
    .action(async (o: { force?: boolean; replace?: boolean; register: boolean; disk?: boolean; output?: string }, cmd: Command) => {
      const { api, json } = contextOf(cmd);
      if (o.output && !o.disk) throw new CliError('--output goes with --disk', 2);
      if (o.disk) {
        const { buildTestDisk } = await import('../../hypervisor/index.ts');
        const out = o.output ? resolve(o.output) : join(dataRoot(), 'cache', 'test-disk.raw');
        if (!json) process.stderr.write(`building a bootable test disk in ${out}\n`);
        const d = await buildTestDisk(out);
        if (!o.register) return void process.stdout.write(`${out}\n`);
        const work = join(dataRoot(), 'cache', 'test-disk-import');
        const { mkdir, rm } = await import('node:fs/promises');
        await mkdir(work, { recursive: true });
        try {
          const c = await convertToOutrigDisk(out, join(work, 'test-disk.odsk'), { format: 'raw' });
          const img = await uploadImage(
            api,
            {
              name: 'test-disk',
              labels: { 'outrig.io/source': 'build-test' },
              spec: {
                kind: 'disk',
                virtualSizeBytes: c.virtualSizeBytes,
                readyMarker: d.readyMarker,
                guestPorts: [80],
                files: { disk: { sha256: c.sha256, size: c.size } },
              },
            },
            { disk: join(work, 'test-disk.odsk') },
            { replace: o.replace },
          );
          if (json) printJson(img);
          else process.stdout.write(`image ${img.name} ${img.status.phase} (${img.id})\n`);
        } finally {
          await rm(work, { recursive: true, force: true });
        }
        return;
      }
      const dir = testImageDir();
      const say = (s: string) => {
        if (!json) process.stderr.write(s + '\n');
      };
      say(`building test guest in ${dir}`);
      const m = await buildTestGuest({ outDir: dir, force: o.force });
      say(`kernel ${m.kernelVersion}, initrd ${(m.files.initrd.size / 1e6).toFixed(1)} MB`);
      if (!o.register) {
        if (json) printJson({ dir, manifest: m });
        else process.stdout.write(`${dir}\n`);
        return;
      }
      const img = await registerImage(api, dir, m, { replace: o.replace, log: say });
      if (json) return printJson(img);
      process.stdout.write(`image ${img.name} ${img.status.phase} (${img.id})\n`);
    });

  image
    .command('import <file>')
    .description('import a raw or qcow2 disk image; instances boot from clones of it')
    .option('--name <name>', 'image name (default: the file name)')
    .option('--format <format>', 'raw or qcow2 (default: detected)')
    .option('--ready-marker <text>', 'text the guest prints on its serial console once ready')
    .option('--port <guestPort>', 'guest TCP port to forward by default (repeatable)', (v: string, p: string[]) => [...p, v], [])
    .option('--raw-despite-header', 'with --format raw: import the file byte for byte even though it starts with a qcow2 header')
    .option('--replace', 'replace an image of the same name')
    .action(
      async (
        file: string,
        o: { name?: string; format?: string; rawDespiteHeader?: boolean; readyMarker?: string; port: string[]; replace?: boolean },
        cmd: Command,
      ) => {
        const { api, json } = contextOf(cmd);
        const { basename } = await import('node:path');
        const { access, mkdir, rm } = await import('node:fs/promises');
        await access(file);
        const name =
          o.name ??
          basename(file)
            .replace(/\.[^.]*$/, '')
            .toLowerCase()
            .replace(/[^a-z0-9-]/g, '-');
        // What can be checked before a conversion that may take minutes is checked first.
        if (!new RegExp(NAME_PATTERN).test(name))
          throw new CliError(`${o.name ? '--name' : `the name '${name}' made from the file name`} must be ${NAME_RULE}${o.name ? '' : '; give --name'}`, 2);
        if (o.rawDespiteHeader && o.format !== 'raw') throw new CliError('--raw-despite-header goes with --format raw', 2);
        const taken = await api.find<Image>(`/v1/images/${encodeURIComponent(name)}`);
        if (taken && !o.replace)
          throw new CliError(
            `image '${name}' already exists (${taken.id}, made ${taken.createdAt}); use --replace to replace it, or --name to import under another name`,
            2,
          );
        const work = join(dataRoot(), 'cache', `import-${process.pid}`);
        await mkdir(work, { recursive: true });
        const say = (s: string) => {
          if (!json) process.stderr.write(s + '\n');
        };
        try {
          say(`converting ${file} into an Outrig disk`);
          const disk = join(work, `${name}.odsk`);
          const c = await convertToOutrigDisk(file, disk, { format: o.format, rawDespiteHeader: o.rawDespiteHeader, progress: !json && process.stderr.isTTY });
          const img = await uploadImage(
            api,
            {
              name,
              labels: { 'outrig.io/source': 'import' },
              spec: {
                kind: 'disk',
                virtualSizeBytes: c.virtualSizeBytes,
                readyMarker: o.readyMarker,
                guestPorts: o.port.map(Number),
                files: { disk: { sha256: c.sha256, size: c.size } },
              },
            },
            { disk },
            { replace: o.replace, log: say },
          );
          if (json) printJson(img);
          else process.stdout.write(`image ${img.name} ${img.status.phase} (${img.id}): ${(c.virtualSizeBytes / 1024 ** 3).toFixed(2)} GiB disk\n`);
        } finally {
          await rm(work, { recursive: true, force: true });
        }
      },
    );

  image
    .command('delete <image>')
    .description('delete an image (refused while instances use it)')
    .action(async (ref: string, _o, cmd: Command) => {
      const { api, json } = contextOf(cmd);
      const i = await api.get<Image>(`/v1/images/${encodeURIComponent(ref)}`);
      await api.delete(`/v1/images/${i.id}`);
      if (json) return printJson({ id: i.id, name: i.name, deleted: true });
      process.stdout.write(`image ${i.name} deleted\n`);
    });
}
