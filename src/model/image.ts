import { Type, type Static } from 'typebox';
import { Condition, resourceSchema, type Resource } from './common.ts';

export const IMAGE_FILE_NAMES = ['kernel', 'initrd', 'disk'] as const;
export type ImageFileName = (typeof IMAGE_FILE_NAMES)[number];

export const ImageFile = Type.Object(
  { sha256: Type.String({ pattern: '^[0-9a-f]{64}$' }), size: Type.Integer({ minimum: 1 }) },
  { additionalProperties: false },
);

const ImageCommon = {
  readyMarker: Type.Optional(Type.String({ minLength: 1, maxLength: 256, description: 'printed on the serial console once the guest is ready' })),
  guestPorts: Type.Array(Type.Integer({ minimum: 1, maximum: 65535 }), { maxItems: 16, description: 'guest TCP ports forwarded to the host by default' }),
};

const KernelImageSpec = Type.Object(
  {
    kind: Type.Literal('kernel', { description: 'direct kernel boot: a kernel and an initramfs' }),
    cmdline: Type.String({ maxLength: 2048 }),
    ...ImageCommon,
    files: Type.Object({ kernel: ImageFile, initrd: ImageFile }, { additionalProperties: false }),
  },
  { additionalProperties: false },
);

const DiskImageSpec = Type.Object(
  {
    kind: Type.Literal('disk', { description: 'a bootable disk (an Outrig disk file with a "base" snapshot); instances boot from a clone of it' }),
    virtualSizeBytes: Type.Integer({ minimum: 512 }),
    ...ImageCommon,
    files: Type.Object({ disk: ImageFile }, { additionalProperties: false }),
  },
  { additionalProperties: false },
);

export const ImageSpec = Type.Union([KernelImageSpec, DiskImageSpec]);
export type ImageSpec = Static<typeof ImageSpec>;
type KernelImageSpec = Static<typeof KernelImageSpec>;
type DiskImageSpec = Static<typeof DiskImageSpec>;

export const ImageStatus = Type.Object({
  phase: Type.String({ description: 'uploading until every file arrived and matched its checksum, then ready' }),
  conditions: Type.Array(Condition),
  filesPresent: Type.Array(Type.String()),
});
export type ImageStatus = Static<typeof ImageStatus>;

export const ImageResource = resourceSchema('Image', ImageSpec, ImageStatus);
export type Image = Resource<ImageSpec, ImageStatus>;

/** The files an image is made of, by kind: kernel and initrd, or one disk. */
export function filesOf(img: Pick<Image, 'spec'>): Partial<Record<ImageFileName, { sha256: string; size: number }>> {
  return img.spec.files;
}
