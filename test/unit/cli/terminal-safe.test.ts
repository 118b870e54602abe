/** Guest console output shown on a terminal: control sequences become visible text, text stays text. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TerminalSanitizer, escapeForTerminal } from '../../../src/cli/terminal-safe.ts';

const ESC = '\x1b';
const BEL = '\x07';
const noControls = (s: string) => {
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    assert.ok(!((c < 0x20 && c !== 0x0a && c !== 0x09 && c !== 0x0d) || (c >= 0x7f && c <= 0x9f)), `control U+${c.toString(16)} in ${JSON.stringify(s)}`);
  }
};

test('OSC 52 (set the clipboard) is shown, not obeyed', () => {
  const out = escapeForTerminal(`${ESC}]52;c;Y3VybCBldmlsLnNoIHwgc2g=${BEL}`);
  assert.equal(out, '^[]52;c;Y3VybCBldmlsLnNoIHwgc2g=^G');
  noControls(out);
});

test('an OSC window title, with ST as its end, is shown', () => {
  assert.equal(escapeForTerminal(`${ESC}]0;root@prod: sudo ok${ESC}\\`), '^[]0;root@prod: sudo ok^[\\');
});

test('CSI erase and cursor moves, and hidden text, are shown', () => {
  const out = escapeForTerminal(`login ok${ESC}[2K${ESC}[1A${ESC}[8msecret${ESC}[0m\n`);
  assert.equal(out, 'login ok^[[2K^[[1A^[[8msecret^[[0m\n');
  noControls(out);
});

test('C1 controls: the raw byte 0x9b and U+009B written as UTF-8 are both escaped', () => {
  assert.equal(escapeForTerminal(Buffer.from([0x41, 0x9b, 0x32, 0x4a, 0x42])), 'A\\x9b2JB');
  assert.equal(escapeForTerminal(Buffer.from([0x41, 0xc2, 0x9b, 0x32, 0x4a])), 'A\\x9b2J');
  assert.equal(escapeForTerminal(Buffer.from([0xc2, 0x90, 0x71])), '\\x90q', 'DCS');
});

test('newline, tab and carriage return pass; other C0, DEL and backspace are shown in caret notation', () => {
  assert.equal(escapeForTerminal('a\tb\r\nc'), 'a\tb\r\nc');
  assert.equal(escapeForTerminal('rm -rf /\b\b\b\b\b\b\b\bls\x7f\x00'), 'rm -rf /^H^H^H^H^H^H^H^Hls^?^@');
});

test('UTF-8 text passes, also split across chunks; bytes that are not UTF-8 are shown as \\xNN', () => {
  assert.equal(escapeForTerminal('héllo 日本 🙂'), 'héllo 日本 🙂');
  const s = new TerminalSanitizer();
  const bytes = Buffer.from('é日🙂', 'utf8');
  let out = '';
  for (const b of bytes) out += s.push(Buffer.from([b]));
  out += s.end();
  assert.equal(out, 'é日🙂');
  const c1 = new TerminalSanitizer();
  assert.equal(c1.push(Buffer.from([0x61, 0xc2])) + c1.push(Buffer.from([0x9b])) + c1.end(), 'a\\x9b', 'a C1 split across chunks');
  assert.equal(
    escapeForTerminal(Buffer.from([0xff, 0xc0, 0xaf, 0xe0, 0x80, 0x80, 0xed, 0xa0, 0x80])),
    '\\xff\\xc0\\xaf\\xe0\\x80\\x80\\xed\\xa0\\x80',
    'invalid, overlong, surrogate',
  );
  const cut = new TerminalSanitizer();
  assert.equal(cut.push(Buffer.from([0x61, 0xe6, 0x97])) + cut.end(), 'a\\xe6\\x97', 'a sequence the stream never finished');
});
