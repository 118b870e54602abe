/**
 * A small NBD client (fixed newstyle, OPT_GO, structured replies, base:allocation), pipelining
 * requests over one connection. Used by Outrig's own tools (crash harness, backups reading
 * volumes) and tests; production guests use QEMU's client.
 */
import { createConnection, type Socket } from 'node:net';
import { BufferQueue } from './buffer-queue.ts';
import * as P from './protocol.ts';

export class NbdRequestError extends Error {
  constructor(
    readonly errno: number,
    message: string,
  ) {
    super(message);
  }
}

interface ExportInfo {
  size: number;
  flags: number;
  minBlock: number;
  preferredBlock: number;
  maxBlock: number;
}

interface Pending {
  type: number;
  offset: number;
  length: number;
  data?: Buffer;
  extents?: { length: number; flags: number }[];
  error?: NbdRequestError;
  resolve: (v: { data?: Buffer; extents?: { length: number; flags: number }[] }) => void;
  reject: (e: Error) => void;
}

export class NbdClient {
  private q = new BufferQueue();
  private waiter: (() => void) | null = null;
  private pending = new Map<bigint, Pending>();
  private nextHandle = 1n;
  private closed = false;
  private closeError?: Error;
  info!: ExportInfo;
  structured = false;
  metaContextId?: number;

  private constructor(private readonly sock: Socket) {
    sock.on('data', (d: Buffer) => {
      this.q.push(d);
      const w = this.waiter;
      this.waiter = null;
      w?.();
    });
    const gone = (e?: Error) => {
      if (this.closed) return;
      this.closed = true;
      this.closeError = e ?? new Error('NBD server closed the connection');
      for (const p of this.pending.values()) p.reject(this.closeError);
      this.pending.clear();
      const w = this.waiter;
      this.waiter = null;
      w?.();
    };
    sock.on('error', gone);
    sock.on('close', () => gone());
  }

  /** Connects to a UNIX socket path and negotiates `exportName`. */
  static async connect(path: string, exportName = '', opts: { structured?: boolean; meta?: boolean } = {}): Promise<NbdClient> {
    const sock = createConnection(path);
    await new Promise<void>((res, rej) => {
      sock.once('connect', res);
      sock.once('error', rej);
    });
    const c = new NbdClient(sock);
    try {
      await c.handshake(exportName, opts.structured ?? true, opts.meta ?? true);
    } catch (e) {
      sock.destroy();
      throw e;
    }
    c.pumpReplies();
    return c;
  }

  private async need(n: number): Promise<Buffer> {
    while (this.q.length < n) {
      if (this.closed) throw this.closeError ?? new Error('connection closed');
      await new Promise<void>((r) => (this.waiter = r));
    }
    return this.q.take(n);
  }

  private option(opt: number, data: Buffer): void {
    const h = Buffer.alloc(16);
    h.writeBigUInt64BE(P.IHAVEOPT, 0);
    h.writeUInt32BE(opt, 8);
    h.writeUInt32BE(data.length, 12);
    this.sock.write(Buffer.concat([h, data]));
  }

  private async optionReply(): Promise<{ type: number; data: Buffer }> {
    const h = await this.need(20);
    if (h.readBigUInt64BE(0) !== P.OPT_REPLY_MAGIC) throw new Error('bad option reply magic');
    const type = h.readUInt32BE(12);
    const data = await this.need(h.readUInt32BE(16));
    return { type, data };
  }

  private async handshake(name: string, structured: boolean, meta: boolean): Promise<void> {
    const g = await this.need(18);
    if (g.readBigUInt64BE(0) !== P.NBDMAGIC || g.readBigUInt64BE(8) !== P.IHAVEOPT) throw new Error('not an NBD newstyle server');
    const flags = Buffer.alloc(4);
    flags.writeUInt32BE(P.FLAG_C_FIXED_NEWSTYLE | P.FLAG_C_NO_ZEROES, 0);
    this.sock.write(flags);
    if (structured) {
      this.option(P.OPT_STRUCTURED_REPLY, Buffer.alloc(0));
      this.structured = (await this.optionReply()).type === P.REP_ACK;
    }
    const nameBuf = Buffer.from(name, 'utf8');
    if (this.structured && meta) {
      const q = Buffer.from(P.META_BASE_ALLOCATION);
      const d = Buffer.alloc(4 + nameBuf.length + 4 + 4 + q.length);
      d.writeUInt32BE(nameBuf.length, 0);
      nameBuf.copy(d, 4);
      d.writeUInt32BE(1, 4 + nameBuf.length);
      d.writeUInt32BE(q.length, 8 + nameBuf.length);
      q.copy(d, 12 + nameBuf.length);
      this.option(P.OPT_SET_META_CONTEXT, d);
      for (;;) {
        const r = await this.optionReply();
        if (r.type === P.REP_META_CONTEXT) this.metaContextId = r.data.readUInt32BE(0);
        else break;
      }
    }
    const go = Buffer.alloc(4 + nameBuf.length + 2 + 2);
    go.writeUInt32BE(nameBuf.length, 0);
    nameBuf.copy(go, 4);
    go.writeUInt16BE(1, 4 + nameBuf.length);
    go.writeUInt16BE(P.INFO_BLOCK_SIZE, 6 + nameBuf.length);
    this.option(P.OPT_GO, go);
    const info: Partial<ExportInfo> = { minBlock: 1, preferredBlock: 4096, maxBlock: P.MAX_PAYLOAD };
    for (;;) {
      const r = await this.optionReply();
      if (r.type === P.REP_ACK) break;
      if (r.type & 0x80000000) throw new Error(`export '${name}' refused: ${r.data.toString('utf8') || r.type.toString(16)}`);
      if (r.type === P.REP_INFO) {
        const t = r.data.readUInt16BE(0);
        if (t === P.INFO_EXPORT) {
          info.size = Number(r.data.readBigUInt64BE(2));
          info.flags = r.data.readUInt16BE(10);
        } else if (t === P.INFO_BLOCK_SIZE) {
          info.minBlock = r.data.readUInt32BE(2);
          info.preferredBlock = r.data.readUInt32BE(6);
          info.maxBlock = r.data.readUInt32BE(10);
        }
      }
    }
    if (info.size === undefined) throw new Error('server sent no export information');
    this.info = info as ExportInfo;
  }

  /** Reads replies for as long as the connection lives. */
  private pumpReplies(): void {
    void (async () => {
      try {
        for (;;) {
          const magic = (await this.need(4)).readUInt32BE(0);
          if (magic === P.SIMPLE_REPLY_MAGIC) {
            const h = await this.need(12);
            const errno = h.readUInt32BE(0);
            const handle = h.readBigUInt64BE(4);
            const p = this.pending.get(handle);
            if (!p) throw new Error(`reply for unknown handle ${handle}`);
            const data = !this.structured && p.type === P.CMD_READ && errno === 0 ? await this.need(p.length) : undefined;
            this.pending.delete(handle);
            if (errno) p.reject(new NbdRequestError(errno, `NBD error ${errno}`));
            else p.resolve({ data });
          } else if (magic === P.STRUCTURED_REPLY_MAGIC) {
            const h = await this.need(16);
            const flags = h.readUInt16BE(0);
            const type = h.readUInt16BE(2);
            const handle = h.readBigUInt64BE(4);
            const len = h.readUInt32BE(12);
            const payload = await this.need(len);
            const p = this.pending.get(handle);
            if (!p) throw new Error(`reply chunk for unknown handle ${handle}`);
            if (type === P.REPLY_TYPE_OFFSET_DATA) {
              const off = Number(payload.readBigUInt64BE(0));
              payload.copy(p.data!, off - p.offset, 8);
            } else if (type === P.REPLY_TYPE_OFFSET_HOLE) {
              const off = Number(payload.readBigUInt64BE(0));
              p.data!.fill(0, off - p.offset, off - p.offset + payload.readUInt32BE(8));
            } else if (type === P.REPLY_TYPE_BLOCK_STATUS) {
              p.extents = [];
              for (let i = 4; i + 8 <= payload.length; i += 8) p.extents.push({ length: payload.readUInt32BE(i), flags: payload.readUInt32BE(i + 4) });
            } else if (type & 0x8000) {
              const errno = payload.readUInt32BE(0);
              const ml = payload.readUInt16BE(4);
              p.error = new NbdRequestError(errno, payload.toString('utf8', 6, 6 + ml) || `NBD error ${errno}`);
            }
            if (flags & P.REPLY_FLAG_DONE) {
              this.pending.delete(handle);
              if (p.error) p.reject(p.error);
              else p.resolve({ data: p.data, extents: p.extents });
            }
          } else throw new Error(`bad reply magic 0x${magic.toString(16)}`);
        }
      } catch (e) {
        if (!this.closed) this.sock.destroy(e as Error);
      }
    })();
  }

  private request(
    type: number,
    flags: number,
    offset: number,
    length: number,
    payload?: Buffer,
  ): Promise<{ data?: Buffer; extents?: { length: number; flags: number }[] }> {
    if (this.closed) return Promise.reject(this.closeError ?? new Error('connection closed'));
    const handle = this.nextHandle++;
    const h = Buffer.alloc(28);
    h.writeUInt32BE(P.REQUEST_MAGIC, 0);
    h.writeUInt16BE(flags, 4);
    h.writeUInt16BE(type, 6);
    h.writeBigUInt64BE(handle, 8);
    h.writeBigUInt64BE(BigInt(offset), 16);
    h.writeUInt32BE(length, 24);
    return new Promise((resolve, reject) => {
      this.pending.set(handle, { type, offset, length, data: type === P.CMD_READ && this.structured ? Buffer.alloc(length) : undefined, resolve, reject });
      this.sock.write(payload ? Buffer.concat([h, payload]) : h);
    });
  }

  async read(offset: number, length: number): Promise<Buffer> {
    return (await this.request(P.CMD_READ, 0, offset, length)).data ?? Buffer.alloc(0);
  }

  async write(offset: number, data: Buffer, fua = false): Promise<void> {
    await this.request(P.CMD_WRITE, fua ? P.CMD_FLAG_FUA : 0, offset, data.length, data);
  }

  async flush(): Promise<void> {
    await this.request(P.CMD_FLUSH, 0, 0, 0);
  }

  async trim(offset: number, length: number): Promise<void> {
    await this.request(P.CMD_TRIM, 0, offset, length);
  }

  async writeZeroes(offset: number, length: number, flags = 0): Promise<void> {
    await this.request(P.CMD_WRITE_ZEROES, flags, offset, length);
  }

  async blockStatus(offset: number, length: number, reqOne = false): Promise<{ length: number; flags: number }[]> {
    return (await this.request(P.CMD_BLOCK_STATUS, reqOne ? P.CMD_FLAG_REQ_ONE : 0, offset, length)).extents ?? [];
  }

  /** Sends a raw request (for protocol tests): any type, flags and length. */
  raw(type: number, flags: number, offset: number, length: number, payload?: Buffer) {
    return this.request(type, flags, offset, length, payload);
  }

  async disconnect(): Promise<void> {
    if (this.closed) return;
    const h = Buffer.alloc(28);
    h.writeUInt32BE(P.REQUEST_MAGIC, 0);
    h.writeUInt16BE(P.CMD_DISC, 6);
    this.sock.end(h);
    await new Promise((r) => this.sock.once('close', r));
  }

  destroy(): void {
    this.sock.destroy();
  }
}
