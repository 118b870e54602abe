import { Type, type Static } from 'typebox';
import { Condition, resourceSchema, type Resource } from './common.ts';

export const IMAGE_FILE_NAMES = ['kernel', 'initrd'] as const;
export type ImageFileName = (typeof IMAGE_FILE_NAMES)[number];

export const ImageFile = Type.Object(
  { sha256: Type.String({ pattern: '^[0-9a-f]{64}$' }), size: Type.Integer({ minimum: 1 }) },
  { additionalProperties: false },
);

export const ImageSpec = Type.Object(
  {
    kind: Type.Literal('kernel', { description: 'direct kernel boot: a kernel and an initramfs' }),
    cmdline: Type.String({ maxLength: 2048 }),
    readyMarker: Type.Optional(Type.String({ minLength: 1, maxLength: 256, description: 'printed on the serial console once the guest is ready' })),
    guestPorts: Type.Array(Type.Integer({ minimum: 1, maximum: 65535 }), { maxItems: 16, description: 'guest TCP ports forwarded to the host by default' }),
    files: Type.Object({ kernel: ImageFile, initrd: ImageFile }, { additionalProperties: false }),
  },
  { additionalProperties: false },
);
export type ImageSpec = Static<typeof ImageSpec>;

export const ImageStatus = Type.Object({
  phase: Type.String({ description: 'uploading until every file arrived and matched its checksum, then ready' }),
  conditions: Type.Array(Condition),
  filesPresent: Type.Array(Type.String()),
});
export type ImageStatus = Static<typeof ImageStatus>;

export const ImageResource = resourceSchema('Image', ImageSpec, ImageStatus);
export type Image = Resource<ImageSpec, ImageStatus>;
