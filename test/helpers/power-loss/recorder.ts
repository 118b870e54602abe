/**
 * Records what the disk engine does to one file, as dm-log-writes does below a file system: every
 * write (with its bytes), every truncate, and every data sync as two events, its call and its
 * completion (a sync covers the writes made before its call; writes made while it runs may or may
 * not be covered). The workload adds its requests' issue and acknowledgement to the same log, so
 * a crash state can be cut at any point of it (model.ts).
 *
 * It hooks BlockFile, the engine's only way to its file, for as long as it is installed (a new
 * file's sync counts as one more sync); with `noopSync` the engine's data syncs return at once and
 * make nothing durable (the missing-fsync bug the
 * simulator must catch).
 */
import { BlockFile } from '../../../src/disk/block-file.ts';

export type IoEvent =
  | { t: 'write'; pos: number; data: Buffer }
  | { t: 'truncate'; size: number }
  | { t: 'sync-start'; id: number }
  | { t: 'sync-end'; id: number }
  | { t: 'issue'; req: number }
  | { t: 'ack'; req: number };

export class IoRecorder {
  readonly events: IoEvent[] = [];
  private syncs = 0;
  private uninstall?: () => void;

  constructor(readonly path: string) {}

  log(e: IoEvent): void {
    this.events.push(e);
  }

  install(opts: { noopSync?: boolean } = {}): void {
    if (this.uninstall) throw new Error('recorder already installed');
    const proto = BlockFile.prototype;
    const { write, truncate, datasync, syncNew } = proto;
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const rec = this;
    const mine = (f: BlockFile) => f.path === rec.path && !f.readOnly;
    proto.write = function (this: BlockFile, pos: number, data: Uint8Array, offset = 0, len = data.length - offset) {
      if (mine(this)) rec.events.push({ t: 'write', pos, data: Buffer.from(data.subarray(offset, offset + len)) });
      return write.call(this, pos, data, offset, len);
    };
    proto.truncate = function (this: BlockFile, size: number) {
      if (mine(this)) rec.events.push({ t: 'truncate', size });
      return truncate.call(this, size);
    };
    proto.datasync = function (this: BlockFile) {
      if (!mine(this)) return datasync.call(this);
      if (opts.noopSync) {
        this.dirty = false;
        return Promise.resolve();
      }
      const id = ++rec.syncs;
      rec.events.push({ t: 'sync-start', id });
      return datasync.call(this).then(() => {
        rec.events.push({ t: 'sync-end', id });
      });
    };
    proto.syncNew = function (this: BlockFile) {
      if (!mine(this)) return syncNew.call(this);
      const id = ++rec.syncs;
      rec.events.push({ t: 'sync-start', id });
      syncNew.call(this);
      rec.events.push({ t: 'sync-end', id });
    };
    this.uninstall = () => {
      Object.assign(proto, { write, truncate, datasync, syncNew });
      this.uninstall = undefined;
    };
  }

  remove(): void {
    this.uninstall?.();
  }
}
