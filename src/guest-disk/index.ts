export { extractFilesystem, type ExtractOptions, type ExtractResult } from './extract.ts';
export { readLayout, type ReaderLayout } from './layout.ts';
export { hasControl, linkTargetProblem, nameProblem } from './names.ts';
export type { Skipped } from './writer.ts';
export { noFollow, readSmallFile } from './safe-path.ts';
export { Count, Guid, NoTableSchema, PartitionSchema, TableSchema, Uuid, WHOLE_DISK } from './layout.ts';
export { inspectImage, qcow2Header, type ImageFormat } from './image-format.ts';
