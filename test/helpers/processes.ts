/** Runs the real `outrig` binary as separate processes: controller, agent and CLI commands. */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ApiClient } from '../../src/cli/client.ts';
import { waitUntil } from './wait.ts';

export const OUTRIG_BIN = fileURLToPath(new URL('../../bin/outrig.js', import.meta.url));

export interface Daemon {
  proc: ChildProcess;
  output: () => string;
  /** Resolves with the exit code (or signal name) once the process has exited. */
  exited: Promise<number | string>;
}

/** Runs `outrig args`; `prefix` replaces the default `node bin/outrig.js` (e.g. to run it inside a network namespace). */
export function spawnOutrig(args: string[], env: Record<string, string>, prefix: string[] = [process.execPath, OUTRIG_BIN]): Daemon {
  const proc = spawn(prefix[0]!, [...prefix.slice(1), ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | string>((resolve) => proc.once('exit', (code, sig) => resolve(code ?? sig ?? -1)));
  return { proc, output: () => out, exited };
}

/**
 * Starts `outrig controller` on a free port and resolves with its URL once it listens. Discovery
 * is off unless `extra` configures it: tests must not answer datagrams from the machine's networks.
 */
export async function startControllerProcess(dataDir: string, extra: string[] = [], env: Record<string, string> = {}): Promise<Daemon & { url: string }> {
  const discovery = extra.some((a) => a.startsWith('--discovery')) ? [] : ['--no-discovery'];
  const d = spawnOutrig(['controller', '--listen', '127.0.0.1:0', '--data', dataDir, ...discovery, ...extra], env);
  const url = await waitUntil(
    'controller to listen',
    () => {
      if (d.proc.exitCode !== null) throw new Error(`controller exited: ${d.output()}`);
      return /outrig controller listening on (\S+)/.exec(d.output())?.[1];
    },
    20_000,
  );
  return { ...d, url };
}

/** An API client with the admin credentials a controller wrote under its data root (OUTRIG_DATA). */
export function adminApi(dataRoot: string, url: string): ApiClient {
  return new ApiClient(url, { ca: readFileSync(join(dataRoot, 'ca.crt'), 'utf8'), token: readFileSync(join(dataRoot, 'admin-token'), 'utf8').trim() });
}

/** A fresh one-time bootstrap token, as `outrig cluster enroll-rule add --kind token` makes. */
export async function bootstrapToken(api: ApiClient, name = `t-${Date.now()}-${Math.random().toString(36).slice(2, 8)}`): Promise<string> {
  return (await api.post<{ token: string }>('/v1/enrollment-rules', { name, kind: 'token' })).token;
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function runCli(
  args: string[],
  env: Record<string, string>,
  timeoutMs = 120_000,
  prefix: string[] = [process.execPath, OUTRIG_BIN],
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const p = spawn(prefix[0]!, [...prefix.slice(1), ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    const t = setTimeout(() => {
      p.kill('SIGKILL');
      reject(new Error(`outrig ${args.join(' ')} timed out; stderr: ${stderr}`));
    }, timeoutMs);
    p.on('exit', (code) => {
      clearTimeout(t);
      resolve({ code: code ?? -1, stdout, stderr });
    });
  });
}

/** Stops a daemon: SIGTERM, then SIGKILL if it lingers. */
export async function stopDaemon(d: Daemon, timeoutMs = 10_000): Promise<void> {
  if (d.proc.exitCode !== null || d.proc.signalCode !== null) return;
  d.proc.kill('SIGTERM');
  const t = setTimeout(() => d.proc.kill('SIGKILL'), timeoutMs);
  await d.exited;
  clearTimeout(t);
}
