/** Adapters from disk engines and snapshots to the block device the NBD server serves. */
import { DiskError, EPERM, type DiskEngine } from './engine.ts';
import { readLayer, statusOfLayer, type Layer } from './layer.ts';
import type { BlockDevice } from './nbd/server.ts';

export function engineDevice(e: DiskEngine): BlockDevice {
  return {
    get size() {
      return e.virtualSize;
    },
    readOnly: e.readOnly,
    preferredBlockSize: e.blockSize,
    read: (o, l) => e.read(o, l),
    status: (o, l, m) => e.status(o, l, m),
    write: (o, d, fua) => e.write(o, d, fua),
    writeZeroes: (o, l, fua, noHole) => e.writeZeroes(o, l, fua, noHole),
    trim: (o, l, fua) => e.trim(o, l, fua),
    flush: () => e.flush(),
  };
}

/** A snapshot (immutable) served read-only. */
export function layerDevice(layer: Layer, size: number): BlockDevice {
  const refuse = () => Promise.reject(new DiskError('snapshots are read-only', EPERM));
  return {
    size,
    readOnly: true,
    preferredBlockSize: layer.blockSize,
    read: (o, l) => readLayer(layer, o, l),
    status: (o, l, m) => statusOfLayer(layer, o, l, m),
    write: refuse,
    writeZeroes: refuse,
    trim: refuse,
    flush: () => Promise.resolve(),
  };
}
