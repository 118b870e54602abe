/**
 * Makes a guest's console output safe to show on the operator's terminal. A guest writes whatever
 * it likes to its serial port; on a terminal, control sequences act: OSC 52 sets the clipboard, OSC
 * 0/2 the window title, CSI erases lines or hides text, and C1 controls (0x9b is CSI) do the same
 * in one byte. So every control character except newline, tab and carriage return is shown as text
 * instead: C0 in caret notation (ESC as ^[, BEL as ^G, DEL as ^?), C1 and bytes that are not UTF-8
 * as \xNN. What is left is printable UTF-8 text; a sequence split across chunks is carried over.
 */

const KEEP = new Set([0x0a, 0x09, 0x0d]);

function caret(b: number): string {
  return b === 0x7f ? '^?' : `^${String.fromCharCode(b + 0x40)}`;
}

function hex(b: number): string {
  return `\\x${b.toString(16).padStart(2, '0')}`;
}

/** Length of the UTF-8 sequence a lead byte starts, or 0 if it cannot start one. */
function seqLength(b: number): number {
  if (b >= 0xc2 && b <= 0xdf) return 2;
  if (b >= 0xe0 && b <= 0xef) return 3;
  if (b >= 0xf0 && b <= 0xf4) return 4;
  return 0;
}

export class TerminalSanitizer {
  private carry: Buffer = Buffer.alloc(0);

  /** The escaped text of `chunk`; an incomplete UTF-8 sequence at its end waits for the next chunk. */
  push(chunk: Uint8Array): string {
    const buf = this.carry.length ? Buffer.concat([this.carry, chunk]) : Buffer.from(chunk);
    this.carry = Buffer.alloc(0);
    let out = '';
    let i = 0;
    while (i < buf.length) {
      const b = buf[i]!;
      if (b < 0x20 || b === 0x7f) {
        out += KEEP.has(b) ? String.fromCharCode(b) : caret(b);
        i++;
        continue;
      }
      if (b < 0x80) {
        out += String.fromCharCode(b);
        i++;
        continue;
      }
      const n = seqLength(b);
      if (n === 0) {
        out += hex(b);
        i++;
        continue;
      }
      if (i + n > buf.length && this.continues(buf, i + 1, buf.length)) {
        this.carry = buf.subarray(i);
        break;
      }
      const seq = buf.subarray(i, i + n);
      const text = seq.length === n && this.continues(seq, 1, n) ? seq.toString('utf8') : '';
      const cp = text.codePointAt(0) ?? -1;
      if (text.length === 0 || cp === 0xfffd) {
        // Overlong, surrogate or cut short: not text, so shown byte by byte.
        out += hex(b);
        i++;
      } else if (cp >= 0x80 && cp <= 0x9f) {
        out += hex(cp); // a C1 control written as UTF-8
        i += n;
      } else {
        out += text;
        i += n;
      }
    }
    return out;
  }

  /** What is left at the end of the stream (a sequence that never completed), escaped. */
  end(): string {
    const rest = [...this.carry].map(hex).join('');
    this.carry = Buffer.alloc(0);
    return rest;
  }

  private continues(buf: Uint8Array, from: number, to: number): boolean {
    for (let j = from; j < to; j++) if ((buf[j]! & 0xc0) !== 0x80) return false;
    return true;
  }
}

/** The whole of `bytes`, escaped (see TerminalSanitizer). */
export function escapeForTerminal(bytes: Uint8Array | string): string {
  const s = new TerminalSanitizer();
  return s.push(typeof bytes === 'string' ? Buffer.from(bytes, 'utf8') : bytes) + s.end();
}
