/**
 * The QMP commands Outrig uses, one function each, with typed arguments and replies. Nothing else
 * names a command: the client (qmp.ts) only carries JSON. Replies that carry data are checked for
 * the shape used here, since a compromised QEMU (or a guest's balloon driver behind it) chooses
 * them. Reference: https://www.qemu.org/docs/master/interop/qemu-qmp-ref.html
 */
import type { QmpClient } from './qmp.ts';

/** What a command needs of the client: tests pass a fake. */
export type QmpExecutor = Pick<QmpClient, 'execute'>;

/** blockdev-add for a volume: an NBD export on a UNIX socket (the only block node Outrig adds). */
export type BlockdevNbdOptions = {
  driver: 'nbd';
  'node-name': string;
  server: { type: 'unix'; path: string };
  export: string;
  /** Seconds I/O waits for the server to come back before it fails. */
  'reconnect-delay'?: number;
};

/** device_add: the driver, the device id, and the driver's own properties. */
export interface DeviceOptions {
  driver: string;
  id: string;
  bus?: string;
  [property: string]: unknown;
}

/** One entry of qom-list (ObjectPropertyInfo): a property, or a child object (`child<...>` type). */
export interface QomProperty {
  name: string;
  type: string;
}

/** The balloon device's guest-stats property: the guest driver's figures (bytes); last-update 0 until it sent any. */
export interface GuestMemoryStats {
  stats: Record<string, number>;
  'last-update': number;
}

function badReply(command: string, reply: unknown): Error {
  return new Error(`QMP ${command}: unexpected reply ${JSON.stringify(reply)?.slice(0, 200)}`);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Leaves capability negotiation mode (the first command on every connection). */
export async function qmpCapabilities(q: QmpExecutor): Promise<void> {
  await q.execute('qmp_capabilities');
}

/** Sets the balloon so that the guest holds `valueBytes`. */
export async function balloon(q: QmpExecutor, valueBytes: number): Promise<void> {
  await q.execute('balloon', { value: valueBytes });
}

/** The balloon's actual size: the memory the guest holds (bytes). */
export async function queryBalloon(q: QmpExecutor): Promise<{ actual: number }> {
  const r = await q.execute('query-balloon');
  if (!isRecord(r) || typeof r.actual !== 'number') throw badReply('query-balloon', r);
  return { actual: r.actual };
}

/** Sets a QOM property. */
export async function qomSet(q: QmpExecutor, path: string, property: string, value: unknown): Promise<void> {
  await q.execute('qom-set', { path, property, value });
}

/** qom-get of a balloon device's guest-stats property. */
export async function qomGetGuestStats(q: QmpExecutor, balloonPath: string): Promise<GuestMemoryStats> {
  const r = await q.execute('qom-get', { path: balloonPath, property: 'guest-stats' });
  if (!isRecord(r) || !isRecord(r.stats) || typeof r['last-update'] !== 'number') throw badReply('qom-get', r);
  const stats: Record<string, number> = {};
  for (const [k, v] of Object.entries(r.stats)) if (typeof v === 'number') stats[k] = v;
  return { stats, 'last-update': r['last-update'] };
}

/** The properties and children of a QOM object. */
export async function qomList(q: QmpExecutor, path: string): Promise<QomProperty[]> {
  const r = await q.execute('qom-list', { path });
  if (!Array.isArray(r)) throw badReply('qom-list', r);
  return r.map((p: unknown) => {
    if (!isRecord(p) || typeof p.name !== 'string' || typeof p.type !== 'string') throw badReply('qom-list', r);
    return { name: p.name, type: p.type };
  });
}

export async function blockdevAdd(q: QmpExecutor, options: BlockdevNbdOptions): Promise<void> {
  await q.execute('blockdev-add', options);
}

export async function blockdevDel(q: QmpExecutor, nodeName: string): Promise<void> {
  await q.execute('blockdev-del', { 'node-name': nodeName });
}

export async function deviceAdd(q: QmpExecutor, options: DeviceOptions): Promise<void> {
  await q.execute('device_add', options);
}

/** Asks for the device's removal; a hot-unplugged device is gone at its DEVICE_DELETED event, not at the reply. */
export async function deviceDel(q: QmpExecutor, id: string): Promise<void> {
  await q.execute('device_del', { id });
}

/** The ACPI power button. */
export async function systemPowerdown(q: QmpExecutor): Promise<void> {
  await q.execute('system_powerdown');
}

/** QEMU exits at once (its block layer flushed). */
export async function quit(q: QmpExecutor): Promise<void> {
  await q.execute('quit');
}
