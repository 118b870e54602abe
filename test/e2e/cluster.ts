/** A controller and an agent as separate `outrig` processes, with a CLI bound to them: the shape users run. */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort } from '../../src/agent/ports.ts';
import { killProcessesUnder } from '../helpers/cleanup.ts';
import { runCli, spawnOutrig, startControllerProcess, stopDaemon, type CliResult, type Daemon } from '../helpers/processes.ts';
import { tempDir } from '../helpers/tmp.ts';
import { waitUntil } from '../helpers/wait.ts';

export class Cluster {
  readonly dir = tempDir('outrig-e2e-');
  controller?: Daemon & { url: string };
  agent?: Daemon;
  port = 0;

  get env(): Record<string, string> {
    return { OUTRIG_DATA: this.dir.path, OUTRIG_URL: this.controller?.url ?? `https://127.0.0.1:${this.port}`, OUTRIG_LOG_LEVEL: 'info' };
  }
  get controllerDir(): string {
    return join(this.dir.path, 'controller');
  }
  get agentDir(): string {
    return join(this.dir.path, 'agent');
  }

  async startController(): Promise<void> {
    if (!this.port) this.port = await freePort('127.0.0.1');
    this.controller = await startControllerProcess(this.controllerDir, ['--listen', `127.0.0.1:${this.port}`, '--heartbeat-ms', '500'], this.env);
  }

  /** Starts the agent; the first start enrolls it with a one-time bootstrap token made through the CLI. */
  async startAgent(): Promise<void> {
    const enrolled = existsSync(join(this.agentDir, 'pki', 'host.crt'));
    const token: Record<string, string> = enrolled
      ? {}
      : { OUTRIG_BOOTSTRAP_TOKEN: (await this.json<{ token: string }>('cluster', 'enroll-rule', 'add', `e2e-${Date.now()}`, '--kind', 'token')).token };
    // The CA comes from $OUTRIG_DATA/ca.crt, which the controller wrote (same data root).
    this.agent = spawnOutrig(['agent', '--controller', this.controller!.url, '--data', this.agentDir, '--name', 'e2e-host', '--stop-timeout', '20'], {
      ...this.env,
      ...token,
    });
    await waitUntil(
      'agent connected',
      () => {
        if (this.agent!.proc.exitCode !== null) throw new Error(`agent exited: ${this.agent!.output()}`);
        return this.agent!.output().includes('connected to controller');
      },
      30_000,
    );
  }

  /** Controller, agent, and the test image registered through the CLI. */
  async up(): Promise<void> {
    await this.startController();
    await this.startAgent();
    const b = await this.cli('image', 'build-test');
    if (b.code !== 0) throw new Error(`image build-test failed: ${b.stderr}`);
  }

  cli(...args: string[]): Promise<CliResult> {
    return runCli(args, this.env);
  }

  /** Runs a CLI command that must succeed. */
  async ok(...args: string[]): Promise<CliResult> {
    const r = await this.cli(...args);
    if (r.code !== 0) throw new Error(`outrig ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
    return r;
  }

  async json<T>(...args: string[]): Promise<T> {
    const r = await this.cli(...args, '--json');
    if (r.code !== 0) throw new Error(`outrig ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
    return JSON.parse(r.stdout) as T;
  }

  serialLog(instanceId: string): string {
    const p = join(this.agentDir, 'vms', instanceId, 'serial.log');
    return existsSync(p) ? readFileSync(p, 'utf8') : '';
  }

  async stop(): Promise<void> {
    if (this.agent) await stopDaemon(this.agent);
    if (this.controller) await stopDaemon(this.controller);
    await killProcessesUnder(this.dir.path);
    this.dir.remove();
  }
}
