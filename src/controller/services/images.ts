/** Image use cases the API calls that change more than the image's file store: a file has arrived. */
import { filesOf, type Image, type ImageFileName } from '../../model/image.ts';
import type { Ctx } from '../context.ts';

export class ImageService {
  constructor(private readonly ctx: Ctx) {}

  /** A file arrived whole and matched its checksum: recorded, and the image is ready once all have. */
  fileArrived(id: string, file: ImageFileName): Promise<Image> {
    return this.ctx.status.record(this.ctx.store.images, id, (cur) => {
      const present = [...new Set([...cur.status.filesPresent, file])].sort();
      const ready = Object.keys(filesOf(cur)).every((f) => present.includes(f));
      return { status: { ...cur.status, filesPresent: present, phase: ready ? 'ready' : 'uploading' } };
    });
  }
}
