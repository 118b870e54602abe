/**
 * NBD server: fixed newstyle handshake (EXPORT_NAME, ABORT, LIST, INFO, GO, STRUCTURED_REPLY,
 * LIST/SET_META_CONTEXT with base:allocation) and the transmission phase (READ, WRITE, DISC,
 * FLUSH, TRIM, WRITE_ZEROES with FAST_ZERO and NO_HOLE, BLOCK_STATUS, FUA, DF, REQ_ONE).
 * Every export is served by one shared device, so FLUSH and FUA on any connection cover all
 * connections and multi-conn is safe to advertise.
 * Anything malformed gets an error reply where the protocol allows one, else the connection is
 * closed; nothing a client sends can crash the server or touch another connection.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { rmSync } from 'node:fs';
import type { Logger } from 'pino';
import type { ReadSegment, StatusExtent } from '../layer.ts';
import { BufferQueue } from './buffer-queue.ts';
import { InFlightBudget } from './in-flight.ts';
import * as P from './protocol.ts';

export interface BlockDevice {
  readonly size: number;
  readonly readOnly: boolean;
  /** Block size clients should prefer (the disk's block size). */
  readonly preferredBlockSize: number;
  read(offset: number, length: number): ReadSegment[];
  status(offset: number, length: number, maxExtents?: number): StatusExtent[];
  write(offset: number, data: Buffer, fua: boolean): Promise<void>;
  writeZeroes(offset: number, length: number, fua: boolean, noHole: boolean): Promise<void>;
  trim(offset: number, length: number, fua: boolean): Promise<void>;
  flush(): Promise<void>;
}

export interface ExportEntry {
  name: string;
  description?: string;
  device: BlockDevice;
}

export interface ExportSource {
  /** The export for a name; "" is the default export. */
  get(name: string): ExportEntry | undefined;
  list(): ExportEntry[];
}

interface NbdServerOptions {
  exports: ExportSource;
  log?: Logger;
  /** Bytes of requests a connection may have in flight before we stop reading from it. */
  maxInFlightBytes?: number;
  /** Bytes of write payloads all connections together may have in flight (default 256 MiB). */
  maxTotalInFlightBytes?: number;
}

const DEFAULT_MAX_IN_FLIGHT = 64 * 1024 * 1024;
const DEFAULT_MAX_TOTAL_IN_FLIGHT = 256 * 1024 * 1024;

const TRANSMISSION_BASE =
  P.TF_HAS_FLAGS | P.TF_SEND_FLUSH | P.TF_SEND_FUA | P.TF_SEND_TRIM | P.TF_SEND_WRITE_ZEROES | P.TF_SEND_FAST_ZERO | P.TF_CAN_MULTI_CONN;

const VALID_CMD_FLAGS: Record<number, number> = {
  [P.CMD_READ]: P.CMD_FLAG_FUA | P.CMD_FLAG_DF,
  [P.CMD_WRITE]: P.CMD_FLAG_FUA,
  [P.CMD_DISC]: P.CMD_FLAG_FUA,
  [P.CMD_FLUSH]: P.CMD_FLAG_FUA,
  [P.CMD_TRIM]: P.CMD_FLAG_FUA,
  [P.CMD_WRITE_ZEROES]: P.CMD_FLAG_FUA | P.CMD_FLAG_NO_HOLE | P.CMD_FLAG_FAST_ZERO,
  [P.CMD_BLOCK_STATUS]: P.CMD_FLAG_FUA | P.CMD_FLAG_REQ_ONE,
};

/**
 * What a discard or zero request weighs in the in-flight budget: it carries no payload, but the
 * engine holds a piece of work (about this many bytes) per block it touches while it applies it,
 * and one 4 GiB request touches up to a million blocks.
 */
const BYTES_PER_BLOCK_OF_WORK = 128;
function blockCost(length: number, dev: BlockDevice): number {
  return Math.ceil(length / dev.preferredBlockSize) * BYTES_PER_BLOCK_OF_WORK;
}

/** Block status answers at most this many descriptors; the client asks again for the rest. */
const MAX_EXTENTS = 1024;
const BASE_ALLOCATION_ID = 1;

function errnoOf(e: unknown): number {
  const n = (e as { errno?: number }).errno;
  return typeof n === 'number' && n > 0 && n < 200 ? n : P.EIO;
}

export class NbdServer {
  private server?: Server;
  private readonly conns = new Set<Connection>();
  private path?: string;
  stopping = false;

  /** Write payloads in flight over every connection. */
  readonly budget: InFlightBudget;

  constructor(readonly opts: NbdServerOptions) {
    this.budget = new InFlightBudget(opts.maxTotalInFlightBytes ?? DEFAULT_MAX_TOTAL_IN_FLIGHT);
  }

  /** Listens on a UNIX socket (replacing a stale socket file). */
  listen(path: string): Promise<void> {
    rmSync(path, { force: true });
    this.path = path;
    return this.listenOn((s) => s.listen(path));
  }

  /** Listens on TCP (loopback or a test's network namespace only; TLS comes with the trust work). */
  listenTcp(host: string, port: number): Promise<number> {
    return this.listenOn((s) => s.listen(port, host)).then(() => {
      const a = this.server!.address();
      return typeof a === 'object' && a ? a.port : port;
    });
  }

  private listenOn(start: (s: Server) => void): Promise<void> {
    const s = createServer((sock) => {
      const c = new Connection(sock, this);
      this.conns.add(c);
      sock.once('close', () => this.conns.delete(c));
    });
    this.server = s;
    return new Promise((resolve, reject) => {
      s.once('error', reject);
      s.once('listening', () => {
        s.off('error', reject);
        resolve();
      });
      start(s);
    });
  }

  get connections(): number {
    return this.conns.size;
  }

  /** Stops accepting; lets in-flight requests finish; closes every connection. */
  async close(): Promise<void> {
    this.stopping = true;
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
    await Promise.all([...this.conns].map((c) => c.shutdown()));
    if (this.path) rmSync(this.path, { force: true });
  }
}

type Phase = 'client-flags' | 'options' | 'transmission' | 'closed';

class Connection {
  private q = new BufferQueue();
  private phase: Phase = 'client-flags';
  private noZeroes = false;
  private structured = false;
  private meta: { exportName: string; base: boolean } | null = null;
  private exp?: ExportEntry;
  private metaEnabled = false;
  private inFlight = 0;
  private inFlightBytes = 0;
  private paused = false;
  private corked = false;
  /** Bytes of an oversized write payload still to be thrown away. */
  private discard = 0;
  private disconnecting = false;
  private idle: (() => void)[] = [];

  constructor(
    private readonly sock: Socket,
    private readonly server: NbdServer,
  ) {
    sock.setNoDelay?.(true);
    const hello = Buffer.alloc(18);
    hello.writeBigUInt64BE(P.NBDMAGIC, 0);
    hello.writeBigUInt64BE(P.IHAVEOPT, 8);
    hello.writeUInt16BE(P.FLAG_FIXED_NEWSTYLE | P.FLAG_NO_ZEROES, 16);
    sock.write(hello);
    sock.on('data', (d: Buffer) => {
      this.q.push(d);
      this.pump();
    });
    sock.on('error', () => this.hardClose());
    sock.on('close', () => {
      this.phase = 'closed';
      this.server.budget.forget(this.resume);
      this.releaseIdle();
    });
  }

  private get log() {
    return this.server.opts.log;
  }

  private send(b: Buffer): void {
    if (this.phase === 'closed' || this.sock.destroyed) return;
    if (!this.corked) {
      this.corked = true;
      this.sock.cork();
      process.nextTick(() => {
        this.corked = false;
        this.sock.uncork();
      });
    }
    this.sock.write(b);
  }

  private hardClose(): void {
    this.phase = 'closed';
    this.sock.destroy();
    this.releaseIdle();
  }

  /** Parses whatever complete messages are buffered. */
  private pump(): void {
    try {
      while (this.phase !== 'closed' && !this.paused) {
        if (this.discard > 0) {
          this.discard -= this.q.skip(this.discard);
          if (this.discard > 0) return;
        }
        const progressed = this.phase === 'client-flags' ? this.readClientFlags() : this.phase === 'options' ? this.readOption() : this.readRequest();
        if (!progressed) return;
      }
    } catch (e) {
      this.log?.warn({ err: (e as Error).message }, 'NBD connection error; closing');
      this.hardClose();
    }
  }

  private readClientFlags(): boolean {
    if (this.q.length < 4) return false;
    const flags = this.q.take(4).readUInt32BE(0);
    if (flags & ~(P.FLAG_C_FIXED_NEWSTYLE | P.FLAG_C_NO_ZEROES)) {
      // The protocol requires dropping a client that sets flags we did not offer.
      this.hardClose();
      return false;
    }
    this.noZeroes = (flags & P.FLAG_C_NO_ZEROES) !== 0;
    this.phase = 'options';
    return true;
  }

  // ---------------------------------------------------------------- option haggling

  private optReply(opt: number, type: number, data: Buffer = Buffer.alloc(0)): void {
    const h = Buffer.alloc(20);
    h.writeBigUInt64BE(P.OPT_REPLY_MAGIC, 0);
    h.writeUInt32BE(opt, 8);
    h.writeUInt32BE(type >>> 0, 12);
    h.writeUInt32BE(data.length, 16);
    this.send(Buffer.concat([h, data]));
  }

  private optError(opt: number, type: number, message: string): void {
    this.optReply(opt, type, Buffer.from(message, 'utf8'));
  }

  private readOption(): boolean {
    if (this.q.length < 16) return false;
    const h = this.q.peek(16);
    if (h.readBigUInt64BE(0) !== P.IHAVEOPT) {
      this.hardClose();
      return false;
    }
    const opt = h.readUInt32BE(8);
    const len = h.readUInt32BE(12);
    if (len > P.MAX_OPTION) {
      // Reading megabytes of option data is a denial-of-service vector: end the session.
      this.hardClose();
      return false;
    }
    if (this.q.length < 16 + len) return false;
    this.q.take(16);
    const data = this.q.take(len);
    if (this.server.stopping && opt !== P.OPT_ABORT) {
      this.optError(opt, P.REP_ERR_SHUTDOWN, 'server is shutting down');
      return true;
    }
    switch (opt) {
      case P.OPT_EXPORT_NAME:
        return this.optExportName(data);
      case P.OPT_ABORT:
        this.optReply(opt, P.REP_ACK);
        this.sock.end();
        this.phase = 'closed';
        return false;
      case P.OPT_LIST:
        if (len !== 0) this.optError(opt, P.REP_ERR_INVALID, 'NBD_OPT_LIST takes no data');
        else {
          for (const e of this.server.opts.exports.list()) {
            const name = Buffer.from(e.name, 'utf8');
            const desc = Buffer.from(e.description ?? '', 'utf8');
            const d = Buffer.alloc(4 + name.length + desc.length);
            d.writeUInt32BE(name.length, 0);
            name.copy(d, 4);
            desc.copy(d, 4 + name.length);
            this.optReply(opt, P.REP_SERVER, d);
          }
          this.optReply(opt, P.REP_ACK);
        }
        return true;
      case P.OPT_STARTTLS:
        this.optError(opt, P.REP_ERR_POLICY, 'TLS is not offered on this socket');
        return true;
      case P.OPT_INFO:
      case P.OPT_GO:
        return this.optInfoGo(opt, data);
      case P.OPT_STRUCTURED_REPLY:
        if (len !== 0) this.optError(opt, P.REP_ERR_INVALID, 'NBD_OPT_STRUCTURED_REPLY takes no data');
        else if (this.structured) this.optError(opt, P.REP_ERR_INVALID, 'structured replies already negotiated');
        else {
          this.structured = true;
          this.optReply(opt, P.REP_ACK);
        }
        return true;
      case P.OPT_LIST_META_CONTEXT:
      case P.OPT_SET_META_CONTEXT:
        this.optMetaContext(opt, data);
        return true;
      default:
        this.optError(opt, P.REP_ERR_UNSUP, `option ${opt} is not supported`);
        return true;
    }
  }

  private transmissionFlags(e: ExportEntry): number {
    let f = TRANSMISSION_BASE;
    if (e.device.readOnly) f |= P.TF_READ_ONLY;
    if (this.structured) f |= P.TF_SEND_DF;
    return f;
  }

  private optExportName(data: Buffer): boolean {
    const requested = data.toString('utf8');
    const e = this.server.opts.exports.get(requested);
    if (!e) {
      // NBD_OPT_EXPORT_NAME cannot carry an error: the protocol says to end the session.
      this.hardClose();
      return false;
    }
    const r = Buffer.alloc(this.noZeroes ? 10 : 134);
    r.writeBigUInt64BE(BigInt(e.device.size), 0);
    r.writeUInt16BE(this.transmissionFlags(e), 8);
    this.send(r);
    this.enterTransmission(e, requested);
    return true;
  }

  private optInfoGo(opt: number, data: Buffer): boolean {
    if (data.length < 6) {
      this.optError(opt, P.REP_ERR_INVALID, 'option data too short');
      return true;
    }
    const nameLen = data.readUInt32BE(0);
    if (4 + nameLen + 2 > data.length) {
      this.optError(opt, P.REP_ERR_INVALID, 'export name length runs past the option');
      return true;
    }
    const name = data.toString('utf8', 4, 4 + nameLen);
    const nReq = data.readUInt16BE(4 + nameLen);
    if (4 + nameLen + 2 + nReq * 2 !== data.length) {
      this.optError(opt, P.REP_ERR_INVALID, 'information request count does not match the option length');
      return true;
    }
    const requests = new Set<number>();
    for (let i = 0; i < nReq; i++) requests.add(data.readUInt16BE(4 + nameLen + 2 + i * 2));
    const e = this.server.opts.exports.get(name);
    if (!e) {
      this.optError(opt, P.REP_ERR_UNKNOWN, `no export named '${name}'`);
      return true;
    }
    const exp = Buffer.alloc(12);
    exp.writeUInt16BE(P.INFO_EXPORT, 0);
    exp.writeBigUInt64BE(BigInt(e.device.size), 2);
    exp.writeUInt16BE(this.transmissionFlags(e), 10);
    this.optReply(opt, P.REP_INFO, exp);
    const bs = Buffer.alloc(14);
    bs.writeUInt16BE(P.INFO_BLOCK_SIZE, 0);
    bs.writeUInt32BE(1, 2);
    bs.writeUInt32BE(Math.min(e.device.preferredBlockSize, 65536), 6);
    bs.writeUInt32BE(P.MAX_PAYLOAD, 10);
    this.optReply(opt, P.REP_INFO, bs);
    if (requests.has(P.INFO_NAME)) {
      const n = Buffer.from(e.name, 'utf8');
      this.optReply(opt, P.REP_INFO, Buffer.concat([Buffer.from([0, P.INFO_NAME]), n]));
    }
    if (requests.has(P.INFO_DESCRIPTION) && e.description) {
      const d = Buffer.from(e.description, 'utf8');
      this.optReply(opt, P.REP_INFO, Buffer.concat([Buffer.from([0, P.INFO_DESCRIPTION]), d]));
    }
    this.optReply(opt, P.REP_ACK);
    if (opt === P.OPT_GO) this.enterTransmission(e, name);
    return true;
  }

  private optMetaContext(opt: number, data: Buffer): void {
    if (!this.structured) return this.optError(opt, P.REP_ERR_INVALID, 'negotiate structured replies first');
    const fail = () => this.optError(opt, P.REP_ERR_INVALID, 'malformed meta context option');
    if (data.length < 8) return fail();
    const nameLen = data.readUInt32BE(0);
    if (4 + nameLen + 4 > data.length) return fail();
    const name = data.toString('utf8', 4, 4 + nameLen);
    const n = data.readUInt32BE(4 + nameLen);
    let off = 8 + nameLen;
    const queries: string[] = [];
    for (let i = 0; i < n; i++) {
      if (off + 4 > data.length) return fail();
      const ql = data.readUInt32BE(off);
      if (off + 4 + ql > data.length) return fail();
      queries.push(data.toString('utf8', off + 4, off + 4 + ql));
      off += 4 + ql;
    }
    if (off !== data.length) return fail();
    if (!this.server.opts.exports.get(name)) return this.optError(opt, P.REP_ERR_UNKNOWN, `no export named '${name}'`);
    const list = opt === P.OPT_LIST_META_CONTEXT;
    const matches = (q: string) => q === P.META_BASE_ALLOCATION || (list && q === 'base:');
    const base = (list && queries.length === 0) || queries.some(matches);
    if (base) {
      const ctx = Buffer.from(P.META_BASE_ALLOCATION, 'utf8');
      const d = Buffer.alloc(4 + ctx.length);
      d.writeUInt32BE(list ? 0 : BASE_ALLOCATION_ID, 0);
      ctx.copy(d, 4);
      this.optReply(opt, P.REP_META_CONTEXT, d);
    }
    if (!list) this.meta = { exportName: name, base };
    this.optReply(opt, P.REP_ACK);
  }

  /** `requested` is the name the client asked for ("" for the default), which meta contexts were set for. */
  private enterTransmission(e: ExportEntry, requested: string): void {
    this.exp = e;
    this.metaEnabled = !!this.meta && this.meta.base && this.meta.exportName === requested;
    this.phase = 'transmission';
  }

  // ---------------------------------------------------------------- transmission

  private simpleReply(handle: Buffer, errno: number, data?: Buffer): void {
    const h = Buffer.allocUnsafe(16);
    h.writeUInt32BE(P.SIMPLE_REPLY_MAGIC, 0);
    h.writeUInt32BE(errno, 4);
    handle.copy(h, 8);
    this.send(data ? Buffer.concat([h, data]) : h);
  }

  private chunkHeader(handle: Buffer, flags: number, type: number, length: number): Buffer {
    const h = Buffer.allocUnsafe(20);
    h.writeUInt32BE(P.STRUCTURED_REPLY_MAGIC, 0);
    h.writeUInt16BE(flags, 4);
    h.writeUInt16BE(type, 6);
    handle.copy(h, 8);
    h.writeUInt32BE(length, 16);
    return h;
  }

  private errorReply(handle: Buffer, errno: number, message: string): void {
    if (!this.structured) return this.simpleReply(handle, errno);
    const msg = Buffer.from(message.slice(0, 1024), 'utf8');
    const p = Buffer.alloc(6 + msg.length);
    p.writeUInt32BE(errno, 0);
    p.writeUInt16BE(msg.length, 4);
    msg.copy(p, 6);
    this.send(Buffer.concat([this.chunkHeader(handle, P.REPLY_FLAG_DONE, P.REPLY_TYPE_ERROR, p.length), p]));
  }

  private okReply(handle: Buffer): void {
    // A payload-less success may always be a simple reply, also with structured replies.
    this.simpleReply(handle, 0);
  }

  private readRequest(): boolean {
    if (this.disconnecting) return false;
    if (this.q.length < 28) return false;
    const h = this.q.peek(28);
    if (h.readUInt32BE(0) !== P.REQUEST_MAGIC) {
      this.log?.warn('NBD request with bad magic; closing');
      this.hardClose();
      return false;
    }
    const flags = h.readUInt16BE(4);
    const type = h.readUInt16BE(6);
    const offsetBig = h.readBigUInt64BE(16);
    const length = h.readUInt32BE(24);
    if (type === P.CMD_WRITE) {
      if (length > P.MAX_PAYLOAD) {
        const handle = Buffer.from(this.q.take(28).subarray(8, 16));
        this.discard = length;
        this.errorReply(handle, P.EINVAL, `write of ${length} bytes exceeds the maximum of ${P.MAX_PAYLOAD}`);
        return true;
      }
      if (this.q.length < 28 + length) return false;
    }
    const handle = Buffer.from(this.q.take(28).subarray(8, 16));
    const payload = type === P.CMD_WRITE ? this.q.take(length) : undefined;
    const offset = offsetBig > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(offsetBig);
    this.dispatch(handle, flags, type, offset, length, payload);
    return true;
  }

  private dispatch(handle: Buffer, flags: number, type: number, offset: number, length: number, payload?: Buffer): void {
    const dev = this.exp!.device;
    const valid = VALID_CMD_FLAGS[type];
    if (type === P.CMD_DISC) return this.disconnect();
    if (valid === undefined) return this.errorReply(handle, P.EINVAL, `unknown command ${type}`);
    if (flags & ~valid) return this.errorReply(handle, P.EINVAL, `flags 0x${flags.toString(16)} are not valid for command ${type}`);
    if (flags & P.CMD_FLAG_DF && !this.structured) return this.errorReply(handle, P.EINVAL, 'DF needs structured replies');
    const writes = type === P.CMD_WRITE || type === P.CMD_TRIM || type === P.CMD_WRITE_ZEROES;
    if (writes && dev.readOnly) return this.errorReply(handle, P.EPERM, 'export is read-only');
    if (type !== P.CMD_FLUSH && offset + length > dev.size) {
      return this.errorReply(
        handle,
        type === P.CMD_WRITE ? P.ENOSPC : P.EINVAL,
        `request ${offset}+${length} is beyond the end of the export (${dev.size} bytes)`,
      );
    }
    if (type === P.CMD_FLUSH && (offset !== 0 || length !== 0)) return this.errorReply(handle, P.EINVAL, 'flush offset and length must be zero');
    const fua = (flags & P.CMD_FLAG_FUA) !== 0;
    switch (type) {
      case P.CMD_READ:
        return this.doRead(handle, flags, offset, length);
      case P.CMD_BLOCK_STATUS:
        return this.doBlockStatus(handle, flags, offset, length);
      case P.CMD_WRITE:
        return this.track(handle, length, dev.write(offset, payload!, fua));
      case P.CMD_FLUSH:
        return this.track(handle, 0, dev.flush());
      case P.CMD_TRIM:
        return this.track(handle, blockCost(length, dev), dev.trim(offset, length, fua));
      case P.CMD_WRITE_ZEROES:
        return this.track(handle, blockCost(length, dev), dev.writeZeroes(offset, length, fua, (flags & P.CMD_FLAG_NO_HOLE) !== 0));
    }
  }

  /** Replies once an asynchronous command settles; applies backpressure on the socket meanwhile. */
  private track(handle: Buffer, bytes: number, p: Promise<void>): void {
    const budget = this.server.budget;
    this.inFlight++;
    this.inFlightBytes += bytes;
    budget.take(bytes);
    if (!this.paused && (this.inFlightBytes > this.limit || budget.over)) {
      this.paused = true;
      this.sock.pause();
      budget.wait(this.resume);
    }
    p.then(
      () => this.okReply(handle),
      (e: unknown) => this.errorReply(handle, errnoOf(e), (e as Error).message),
    ).finally(() => {
      this.inFlight--;
      this.inFlightBytes -= bytes;
      budget.give(bytes);
      this.resume();
      if (this.inFlight === 0) this.releaseIdle();
    });
  }

  private get limit(): number {
    return this.server.opts.maxInFlightBytes ?? DEFAULT_MAX_IN_FLIGHT;
  }

  /** Reads the socket again once this connection and the whole server are at half their limits. */
  private readonly resume = (): boolean => {
    if (!this.paused) return true;
    if (this.inFlightBytes > this.limit / 2 || !this.server.budget.belowHalf) return false;
    this.paused = false;
    this.server.budget.forget(this.resume);
    if (this.phase === 'closed') return true;
    this.sock.resume();
    this.pump();
    return true;
  };

  private doRead(handle: Buffer, flags: number, offset: number, length: number): void {
    if (length > P.MAX_PAYLOAD) return this.errorReply(handle, P.EINVAL, `read of ${length} bytes exceeds the maximum of ${P.MAX_PAYLOAD}`);
    let segs: ReadSegment[];
    try {
      segs = this.exp!.device.read(offset, length);
    } catch (e) {
      return this.errorReply(handle, errnoOf(e), (e as Error).message);
    }
    if (!this.structured || flags & P.CMD_FLAG_DF || segs.length === 1) {
      const data = segs.length === 1 && segs[0]!.data ? segs[0]!.data : assemble(segs, offset, length);
      if (!this.structured) return this.simpleReply(handle, 0, data);
      if (length === 0) return this.send(this.chunkHeader(handle, P.REPLY_FLAG_DONE, P.REPLY_TYPE_NONE, 0));
      if (segs.length === 1 && !segs[0]!.data && !(flags & P.CMD_FLAG_DF)) return this.sendHole(handle, offset, length, true);
      return this.sendData(handle, offset, data, true);
    }
    segs.forEach((s, i) => {
      const last = i === segs.length - 1;
      if (s.data) this.sendData(handle, s.offset, s.data, last);
      else this.sendHole(handle, s.offset, s.length, last);
    });
  }

  private sendData(handle: Buffer, offset: number, data: Buffer, last: boolean): void {
    const o = Buffer.allocUnsafe(8);
    o.writeBigUInt64BE(BigInt(offset), 0);
    this.send(Buffer.concat([this.chunkHeader(handle, last ? P.REPLY_FLAG_DONE : 0, P.REPLY_TYPE_OFFSET_DATA, 8 + data.length), o, data]));
  }

  private sendHole(handle: Buffer, offset: number, length: number, last: boolean): void {
    const p = Buffer.allocUnsafe(12);
    p.writeBigUInt64BE(BigInt(offset), 0);
    p.writeUInt32BE(length, 8);
    this.send(Buffer.concat([this.chunkHeader(handle, last ? P.REPLY_FLAG_DONE : 0, P.REPLY_TYPE_OFFSET_HOLE, 12), p]));
  }

  private doBlockStatus(handle: Buffer, flags: number, offset: number, length: number): void {
    if (!this.structured || !this.metaEnabled) return this.errorReply(handle, P.EINVAL, 'no metadata context was negotiated');
    if (length === 0) return this.errorReply(handle, P.EINVAL, 'block status of zero length');
    let ext: StatusExtent[];
    try {
      ext = this.exp!.device.status(offset, length, flags & P.CMD_FLAG_REQ_ONE ? 1 : MAX_EXTENTS);
    } catch (e) {
      return this.errorReply(handle, errnoOf(e), (e as Error).message);
    }
    const p = Buffer.allocUnsafe(4 + ext.length * 8);
    p.writeUInt32BE(BASE_ALLOCATION_ID, 0);
    ext.forEach((x, i) => {
      p.writeUInt32BE(x.length, 4 + i * 8);
      p.writeUInt32BE(x.hole ? P.STATE_HOLE | P.STATE_ZERO : 0, 8 + i * 8);
    });
    this.send(Buffer.concat([this.chunkHeader(handle, P.REPLY_FLAG_DONE, P.REPLY_TYPE_BLOCK_STATUS, p.length), p]));
  }

  /** NBD_CMD_DISC: finish what is in flight, then close. */
  private disconnect(): void {
    this.disconnecting = true;
    void this.whenIdle().then(() => this.sock.end());
  }

  private whenIdle(): Promise<void> {
    if (this.inFlight === 0) return Promise.resolve();
    return new Promise((r) => this.idle.push(r));
  }

  private releaseIdle(): void {
    for (const r of this.idle.splice(0)) r();
  }

  async shutdown(): Promise<void> {
    this.disconnecting = true;
    await this.whenIdle();
    if (this.phase === 'closed') return;
    const closed = new Promise((r) => this.sock.once('close', r));
    this.sock.end();
    // A client that never closes its end does not hold the server up.
    const t = setTimeout(() => this.sock.destroy(), 2000);
    await closed;
    clearTimeout(t);
  }
}

function assemble(segs: ReadSegment[], offset: number, length: number): Buffer {
  const out = Buffer.alloc(length);
  for (const s of segs) if (s.data) s.data.copy(out, s.offset - offset);
  return out;
}
