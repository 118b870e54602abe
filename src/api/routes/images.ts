import type { Readable } from 'node:stream';
import { Type } from 'typebox';
import { ChecksumMismatchError } from '../../controller/index.ts';
import { Name } from '../../model/common.ts';
import { filesOf, IMAGE_FILE_NAMES, ImageResource, ImageSpec, type ImageFileName } from '../../model/image.ts';
import { ApiError } from '../errors.ts';
import type { Api, ApiServices } from '../server.ts';
import { errors, listOf, MetadataFields, RefParams } from '../schemas.ts';

const CreateImage = Type.Object({ name: Name, ...MetadataFields, spec: ImageSpec }, { additionalProperties: false });
const FileParams = Type.Object({ ref: Type.String(), file: Type.Union(IMAGE_FILE_NAMES.map((f) => Type.Literal(f))) });

export function imageRoutes(app: Api, s: ApiServices): void {
  // Image files are uploaded as raw bytes and streamed to disk, not buffered.
  app.addContentTypeParser('application/octet-stream', (_req, payload, done) => done(null, payload));

  app.get('/images', { schema: { tags: ['images'], response: { 200: listOf(ImageResource) } } }, async () => ({
    items: await s.store.images.list(),
  }));

  app.get('/images/:ref', { schema: { tags: ['images'], params: RefParams, response: { 200: ImageResource, ...errors } } }, async (req) =>
    s.store.images.mustFind(req.params.ref),
  );

  app.post(
    '/images',
    {
      schema: {
        tags: ['images'],
        summary: 'Register an image; then upload each of its files with PUT /v1/images/{ref}/files/{file}',
        body: CreateImage,
        response: { 201: ImageResource, ...errors },
      },
    },
    async (req, reply) => {
      const { name, labels, annotations, spec } = req.body;
      return reply.status(201).send(await s.controller.images.register({ name, labels, annotations, spec }));
    },
  );

  app.put(
    '/images/:ref/files/:file',
    {
      bodyLimit: 4 * 1024 * 1024 * 1024,
      schema: {
        tags: ['images'],
        summary: 'Upload one file of an image (application/octet-stream); kept only if size and sha256 match the spec',
        params: FileParams,
        response: { 200: ImageResource, ...errors },
      },
    },
    async (req) => {
      const img = await s.store.images.mustFind(req.params.ref);
      const file = req.params.file as ImageFileName;
      const declared = filesOf(img)[file];
      if (!declared) throw new ApiError(404, 'not_found', `a ${img.spec.kind} image has no file '${file}'`);
      if (!req.headers['content-type']?.startsWith('application/octet-stream')) {
        throw new ApiError(415, 'unsupported_media_type', 'upload image files as application/octet-stream');
      }
      try {
        await s.imageFiles.receive(img.id, file, req.body as Readable, declared);
      } catch (e) {
        if (e instanceof ChecksumMismatchError) throw new ApiError(422, 'checksum_mismatch', e.message);
        throw e;
      }
      return s.controller.images.fileArrived(img.id, file);
    },
  );

  app.get(
    '/images/:ref/files/:file',
    { schema: { tags: ['images'], summary: 'Download an image file (hosts, with their certificate)', params: FileParams } },
    async (req, reply) => {
      const img = await s.store.images.mustFind(req.params.ref);
      const declared = filesOf(img)[req.params.file as ImageFileName];
      if (!declared || !s.imageFiles.has(img.id, req.params.file)) throw new ApiError(404, 'not_found', `image ${img.name} has no ${req.params.file}`);
      reply.header('content-type', 'application/octet-stream');
      reply.header('content-length', String(declared.size));
      return reply.send(s.imageFiles.open(img.id, req.params.file));
    },
  );

  app.delete('/images/:ref', { schema: { tags: ['images'], params: RefParams, response: { 204: Type.Null(), ...errors } } }, async (req, reply) => {
    const img = await s.controller.images.remove(req.params.ref);
    await s.imageFiles.remove(img.id);
    return reply.status(204).send(null);
  });
}
