/** The backup subsystem's public face: what other subsystems may use. */
export { Archiver } from './archiver.ts';
export { backupDiskImage, backupLiveDisk, restoreDiskImage, restoreFilesIntoImage, restoreSystemState } from './bmr.ts';
export type { BmrManifest } from './bmr.ts';
export { findLiveDisk } from './live-disk.ts';
export { Restorer } from './restorer.ts';
export { acquireLock } from './lock.ts';
export type { Lock } from './lock.ts';
export { copyImageToExport, withExportImage } from './nbd-source.ts';
export { Repository, RepositoryError } from './repository.ts';
export type { SnapshotRecord } from './repository.ts';
export { ExistsError, LocalStorage } from './storage.ts';
export { installExtlinux } from './extlinux.ts';
export { WrongPassphraseError, scopePassphrase } from './crypto.ts';
export { partitionName } from './disk-layout.ts';
export { DEFAULT_GROUP_BY, parseGroupBy, prune, selectKeep, sourceOf } from './prune.ts';
export type { Retention, RetentionGroup } from './prune.ts';
export { verifyRepository } from './verify.ts';
