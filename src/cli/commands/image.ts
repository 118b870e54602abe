import { createReadStream } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type { Command } from 'commander';
import { dataRoot } from '../../common/paths.ts';
import { buildTestGuest, type GuestImageManifest } from '../../hypervisor/index.ts';
import type { Image } from '../../model/image.ts';
import { ApiRequestError, type ApiClient } from '../client.ts';
import { contextOf } from '../context.ts';
import { CliError } from '../errors.ts';
import { age, printDetails, printJson, printTable } from '../output.ts';

/** Where `image build-test` keeps its build, so later runs reuse it. */
export function testImageDir(): string {
  return join(dataRoot(), 'cache', 'test-image');
}

/**
 * Registers a built image with the controller and uploads its files. Idempotent: an image with the
 * same name and checksums is left as it is; a different one is replaced only if `replace` is set.
 */
export async function registerImage(
  api: ApiClient,
  dir: string,
  m: GuestImageManifest,
  opts: { replace?: boolean; log?: (s: string) => void } = {},
): Promise<Image> {
  const log = opts.log ?? (() => undefined);
  const spec = { kind: m.kind, cmdline: m.cmdline, readyMarker: m.readyMarker, guestPorts: m.guestPorts, files: { kernel: { sha256: m.files.kernel.sha256, size: m.files.kernel.size }, initrd: { sha256: m.files.initrd.sha256, size: m.files.initrd.size } } };
  let img = await api.find<Image>(`/v1/images/${m.name}`);
  if (img && JSON.stringify(img.spec.files) !== JSON.stringify(spec.files)) {
    if (!opts.replace) throw new CliError(`image ${m.name} is already registered with other files; use --replace to replace it`);
    log(`replacing image ${m.name}`);
    await api.delete(`/v1/images/${img.id}`);
    img = undefined;
  }
  if (!img) img = await api.post<Image>('/v1/images', { name: m.name, labels: { 'outrig.io/source': 'build-test', 'outrig.io/kernel': m.kernelVersion }, spec });
  for (const [file, local] of [['kernel', m.files.kernel.name], ['initrd', m.files.initrd.name]] as const) {
    if (img.status.filesPresent.includes(file)) continue;
    log(`uploading ${file} (${(m.files[file].size / 1e6).toFixed(1)} MB)`);
    const res = await api.raw('PUT', `/v1/images/${img.id}/files/${file}`, {
      headers: { 'content-type': 'application/octet-stream' },
      rawBody: Readable.toWeb(createReadStream(join(dir, local))) as unknown as BodyInit,
      duplex: 'half',
    });
    const body = (await res.json()) as Image & { error?: { code: string; message: string } };
    if (!res.ok) throw new ApiRequestError(res.status, body.error?.code ?? 'http_error', body.error?.message ?? `HTTP ${res.status}`);
    img = body;
  }
  return img;
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
        ['NAME', 'ID', 'PHASE', 'KIND', 'SIZE', 'SHA256 (KERNEL)', 'AGE'],
        items.map((i) => [
          i.name,
          i.id,
          i.status.phase,
          i.spec.kind,
          `${((i.spec.files.kernel.size + i.spec.files.initrd.size) / 1e6).toFixed(1)} MB`,
          i.spec.files.kernel.sha256.slice(0, 12),
          age(i.createdAt),
        ]),
      );
    });

  image
    .command('show <image>')
    .description('show an image')
    .action(async (ref: string, _o, cmd: Command) => {
      const { api, json } = contextOf(cmd);
      const i = await api.get<Image>(`/v1/images/${encodeURIComponent(ref)}`);
      if (json) return printJson(i);
      printDetails({ name: i.name, id: i.id, phase: i.status.phase, spec: i.spec, filesPresent: i.status.filesPresent, labels: i.labels, createdAt: i.createdAt });
    });

  image
    .command('build-test')
    .description('build the tiny test guest (Debian kernel + busybox initramfs) and register it as image "test"')
    .option('--force', 'rebuild even if a build is cached')
    .option('--replace', 'replace a registered "test" image that has different files')
    .option('--no-register', 'only build; print where the files are')
    .action(async (o: { force?: boolean; replace?: boolean; register: boolean }, cmd: Command) => {
      const { api, json } = contextOf(cmd);
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
