/** Image use cases the API calls: register, a file arrived, delete (the files themselves are the API's ImageFiles). */
import { filesOf, type Image, type ImageFileName, type ImageSpec } from '../../model/image.ts';
import type { Ctx } from '../context.ts';
import { ServiceError } from './errors.ts';

export class ImageService {
  constructor(private readonly ctx: Ctx) {}

  /** Registers an image; it is ready once each of its files has arrived. */
  register(b: { name: string; labels?: Record<string, string>; annotations?: Record<string, string>; spec: ImageSpec }): Promise<Image> {
    return this.ctx.store.images.create({ ...b, status: { phase: 'uploading', conditions: [], filesPresent: [] } });
  }

  /** Deletes an image nothing uses (no instance boots it, no volume is being made from it); its files are the caller's to remove. */
  async remove(ref: string): Promise<Image> {
    const { store } = this.ctx;
    const img = await store.images.mustFind(ref);
    const users = [
      ...(await store.instances.list()).filter((i) => i.spec.image === img.name).map((i) => `instance ${i.name}`),
      ...(await store.volumes.list()).filter((v) => v.spec.source && 'image' in v.spec.source && v.spec.source.image === img.id).map((v) => `volume ${v.name}`),
    ];
    if (users.length) throw new ServiceError(409, 'in_use', `image ${img.name} is used by ${users.join(', ')}`);
    await store.images.delete(img.id);
    return img;
  }

  /** A file arrived whole and matched its checksum: recorded, and the image is ready once all have. */
  fileArrived(id: string, file: ImageFileName): Promise<Image> {
    return this.ctx.status.record(this.ctx.store.images, id, (cur) => {
      const present = [...new Set([...cur.status.filesPresent, file])].sort();
      const ready = Object.keys(filesOf(cur)).every((f) => present.includes(f));
      return { status: { ...cur.status, filesPresent: present, phase: ready ? 'ready' : 'uploading' } };
    });
  }
}
