/** The agent's console stream: never ahead of its credit or of the send queue; tails across rotation. */
import assert from 'node:assert/strict';
import { appendFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { ConsoleStream, type ConsoleStreamOptions } from '../../../src/agent/console.ts';
import { previousLog, rotateIfOver } from '../../../src/agent/serial-log.ts';
import { tempDir } from '../../helpers/tmp.ts';
import { waitUntil } from '../../helpers/wait.ts';

function harness(path: string, o: Partial<ConsoleStreamOptions> = {}) {
  const st = { got: '', granted: o.credit ?? 1 << 30, ended: 0, error: undefined as string | undefined, room: true };
  const c = new ConsoleStream({
    path,
    tailBytes: 1 << 30,
    follow: false,
    credit: st.granted,
    send: (chunk) => {
      st.got += chunk.toString('latin1');
      assert.ok(st.got.length <= st.granted, `sent ${st.got.length} bytes on ${st.granted} bytes of credit`);
      assert.ok(st.room, 'sent while the send queue was full');
    },
    end: (e) => {
      st.ended++;
      st.error = e;
    },
    canSend: () => st.room,
    pollMs: 20,
    ...o,
  });
  const grant = (n: number) => {
    st.granted += n;
    c.grant(n);
  };
  return { c, st, grant };
}

test('sends no more than its credit; each grant lets that much more through; ends once, at the end', async () => {
  const dir = tempDir();
  try {
    const path = join(dir.path, 'serial.log');
    writeFileSync(path, 'a'.repeat(300_000));
    const { c, st, grant } = harness(path, { credit: 100_000 });
    await c.start();
    await waitUntil('the first credit used', () => st.got.length === 100_000);
    grant(50_000);
    await waitUntil('the grant used', () => st.got.length === 150_000);
    assert.equal(st.ended, 0);
    grant(1 << 20);
    await waitUntil('the end', () => st.ended === 1);
    assert.equal(st.got.length, 300_000);
    assert.equal(st.error, undefined);
  } finally {
    dir.remove();
  }
});

test('reads nothing while the send queue is full, and goes on when kicked', async () => {
  const dir = tempDir();
  try {
    const path = join(dir.path, 'serial.log');
    writeFileSync(path, 'b'.repeat(10_000));
    const { c, st } = harness(path);
    st.room = false;
    await c.start();
    await c.start(); // a second pass finds no room either
    assert.equal(st.got.length, 0);
    st.room = true;
    c.kick();
    await waitUntil('the end', () => st.ended === 1);
    assert.equal(st.got, 'b'.repeat(10_000));
  } finally {
    dir.remove();
  }
});

test('a tail longer than the current file starts in the rotated previous one', async () => {
  const dir = tempDir();
  try {
    const path = join(dir.path, 'serial.log');
    writeFileSync(previousLog(path), 'A'.repeat(100));
    writeFileSync(path, 'B'.repeat(50));
    const { c, st } = harness(path, { tailBytes: 80 });
    await c.start();
    await waitUntil('the end', () => st.ended === 1);
    assert.equal(st.got, 'A'.repeat(30) + 'B'.repeat(50));
  } finally {
    dir.remove();
  }
});

test('following across a rotation loses and repeats nothing', async () => {
  const dir = tempDir();
  try {
    const path = join(dir.path, 'serial.log');
    writeFileSync(path, 'old\n');
    const { c, st } = harness(path, { tailBytes: 0, follow: true });
    await c.start();
    appendFileSync(path, 'one\n');
    await waitUntil('one', () => st.got === 'one\n');
    st.room = false; // a slow reader: the rotation happens while it waits
    appendFileSync(path, 'two\n');
    assert.equal(await rotateIfOver(path, 4), true);
    appendFileSync(path, 'three\n');
    st.room = true;
    c.kick();
    await waitUntil('two and three', () => st.got === 'one\ntwo\nthree\n').catch((e: Error) => {
      throw new Error(`${e.message}; got ${JSON.stringify(st.got)}`);
    });
    c.stop();
  } finally {
    dir.remove();
  }
});
