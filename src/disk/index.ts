export { DiskEngine, DiskError, type CacheMode, type EngineInfo, type SnapshotInfo } from './engine.ts';
export { serveDisk, DiskExports } from './serve.ts';
export { NbdServer, type BlockDevice, type ExportEntry, type ExportSource } from './nbd/server.ts';
export { engineDevice, layerDevice } from './device.ts';
export { DEFAULT_BLOCK_SIZE, FormatError } from './format.ts';
export { checkDisk, checkFile, type CheckReport } from './check.ts';
export type { Finding } from './validate.ts';
export { fileSystemSpace, newVolumeMayAllocate, volumeMayAllocate, type DiskSpace } from './space.ts';
