import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Chunker, chunkLengths, gearTable, type ChunkerParams } from '../../../src/backup/chunker.ts';

const small: ChunkerParams = { minSize: 2048, avgSize: 8192, maxSize: 65536 };
const gear = gearTable(Buffer.from('test-seed'));

/** A deterministic pseudo-random buffer (xorshift), so failures reproduce. */
function bytes(n: number, seed = 1): Buffer {
  const b = Buffer.alloc(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

test('chunks cover the input exactly, within the size bounds, averaging near the target', () => {
  const data = bytes(4 * 1024 * 1024);
  const lens = chunkLengths(data, new Chunker(small, gear));
  assert.equal(
    lens.reduce((a, b) => a + b, 0),
    data.length,
  );
  for (const n of lens.slice(0, -1)) assert.ok(n >= small.minSize && n <= small.maxSize, `chunk of ${n}`);
  const avg = data.length / lens.length;
  assert.ok(avg > small.avgSize * 0.6 && avg < small.avgSize * 1.6, `average ${avg}`);
});

test('feeding bytes piecemeal finds the same cuts as feeding them at once', () => {
  const data = bytes(1024 * 1024, 7);
  const whole = chunkLengths(data, new Chunker(small, gear));
  const c = new Chunker(small, gear);
  const got: number[] = [];
  let start = 0;
  let have = 0;
  while (start < data.length) {
    have = Math.min(data.length, have + 1000);
    const n = c.cut(data.subarray(start, have), have === data.length);
    if (n < 0) continue;
    got.push(n);
    start += n;
    have = start;
  }
  assert.deepEqual(got, whole);
});

test('an insertion near the start changes only the chunks around it', () => {
  const data = bytes(2 * 1024 * 1024, 3);
  const edited = Buffer.concat([data.subarray(0, 10_000), Buffer.from('inserted bytes'), data.subarray(10_000)]);
  const ids = (b: Buffer) => {
    const out = new Set<string>();
    let off = 0;
    for (const n of chunkLengths(b, new Chunker(small, gear))) {
      out.add(b.subarray(off, off + n).toString('base64'));
      off += n;
    }
    return out;
  };
  const a = ids(data);
  const b = ids(edited);
  const shared = [...b].filter((x) => a.has(x)).length;
  assert.ok(shared >= b.size - 2, `${shared} of ${b.size} chunks shared`);
});

test('another seed cuts elsewhere; zeros and tiny inputs are handled', () => {
  const data = bytes(1024 * 1024, 5);
  assert.notDeepEqual(chunkLengths(data, new Chunker(small, gearTable(Buffer.from('other')))), chunkLengths(data, new Chunker(small, gear)));
  assert.deepEqual(chunkLengths(Buffer.alloc(200_000), new Chunker(small, gear)), [65536, 65536, 65536, 3392]);
  assert.deepEqual(chunkLengths(Buffer.alloc(10), new Chunker(small, gear)), [10]);
  assert.deepEqual(chunkLengths(Buffer.alloc(0), new Chunker(small, gear)), []);
  assert.throws(() => new Chunker({ minSize: 10, avgSize: 5, maxSize: 20 }, gear), /bad chunker sizes/);
});
