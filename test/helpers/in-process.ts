/** A controller and one agent in this process, the agent enrolled and ready, with an API client and the test image. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startAgent, type RunningAgent } from '../../src/agent/index.ts';
import { ApiClient } from '../../src/cli/client.ts';
import { registerImage } from '../../src/cli/commands/image.ts';
import { createLogger } from '../../src/common/log.ts';
import { startController, type ControllerConfig, type RunningController } from '../../src/server/index.ts';
import { buildTestGuest, macFor, type VmSpec } from '../../src/hypervisor/index.ts';
import type { Instance } from '../../src/model/instance.ts';
import type { Network } from '../../src/model/network.ts';
import { execFileSync } from 'node:child_process';
import { emptyFirewall, firewallScript } from '../../src/network/firewall-plan.ts';
import { dhcpSegments, dhcpTag, removeSegment, removeTaps, stopDhcp } from '../../src/network/index.ts';
import { killProcessesUnder } from './cleanup.ts';
import { tempDir } from './tmp.ts';
import { waitUntil } from './wait.ts';

export interface InProcessCluster {
  dir: ReturnType<typeof tempDir>;
  ctl: RunningController;
  agent: RunningAgent;
  api: ApiClient;
  close(): Promise<void>;
}

export interface InProcessOptions {
  /** Controller settings over the defaults (allocation policy, heartbeat period). */
  controller?: Partial<ControllerConfig>;
  /** Runs before the agent starts, with its data directory (made already): to put its disks elsewhere, say. */
  beforeAgent?: (agentDir: string) => void;
}

export async function startInProcess(hostName: string, o: InProcessOptions = {}): Promise<InProcessCluster> {
  const dir = tempDir();
  const log = createLogger('test', { file: join(dir.path, 'test.log') });
  const ctl = await startController({ dataDir: join(dir.path, 'controller'), host: '127.0.0.1', port: 0, log, ...o.controller });
  if (o.beforeAgent) {
    mkdirSync(join(dir.path, 'agent'), { mode: 0o700 });
    o.beforeAgent(join(dir.path, 'agent'));
  }
  const { token } = await ctl.trust.addRule(`${hostName}-rule`, { kind: 'token' });
  const agent = await startAgent({
    dataDir: join(dir.path, 'agent'),
    join: { kind: 'direct', controllerUrl: ctl.url, caPem: ctl.trust.ca.certPem },
    bootstrapToken: token,
    log,
    name: hostName,
  });
  const api = new ApiClient(ctl.url, { ca: ctl.trust.ca.certPem, token: ctl.adminToken });
  await waitUntil('host ready', async () => (await api.find<{ status: { phase: string } }>(`/v1/hosts/${hostName}`))?.status.phase === 'ready');
  const imgDir = join(dir.path, 'image');
  await registerImage(api, imgDir, await buildTestGuest({ outDir: imgDir }));
  return {
    dir,
    ctl,
    agent,
    api,
    async close() {
      // This agent runs in the machine's own namespace: what it made there (bridges, VXLAN devices,
      // taps, DHCP servers under /run, firewall tables) outlives it by design, so the test takes it down here, or a
      // later test's network with the same segment would find it.
      const { items: instances } = await api.get<{ items: Instance[] }>('/v1/instances');
      const { items: networks } = await api.get<{ items: Network[] }>('/v1/networks');
      await agent.close();
      await ctl.close();
      await killProcessesUnder(dir.path);
      const tag = dhcpTag(join(dir.path, 'agent'));
      for (const i of instances) await removeTaps(i.id);
      for (const segment of new Set([...networks.map((n) => n.spec.segment), ...dhcpSegments(tag)])) {
        const r = await removeSegment(segment, () => stopDhcp(segment, tag));
        if (r.busy) throw new Error(`segment ${segment} left behind: ${r.busy}`);
      }
      // And its firewall tables (none when it carried no network).
      execFileSync('nft', ['-f', '-'], { input: firewallScript(emptyFirewall()) });
      dir.remove();
    },
  };
}

/**
 * An instance placed on the agent's host with a VM directory as the agent would have left it
 * (launch spec, adopted as stopped), so a test can write its serial log as a guest would.
 */
export async function stoppedVm(env: InProcessCluster, name: string): Promise<{ inst: Instance; serialLog: string }> {
  const inst = await env.api.post<Instance>('/v1/instances', { name, image: 'test', vcpus: 1, memoryMiB: 64, start: false });
  await waitUntil('instance placed', async () => (await env.api.get<Instance>(`/v1/instances/${inst.id}`)).status.hostId);
  const vmDir = join(env.dir.path, 'agent', 'vms', inst.id);
  mkdirSync(vmDir, { recursive: true });
  const spec: VmSpec = {
    id: inst.id,
    name,
    vcpus: 1,
    memoryMiB: 64,
    disks: [],
    accel: 'tcg',
    forwards: [],
    mac: macFor(inst.id),
    owner: { generation: 1, restartSeq: 0 },
  };
  writeFileSync(join(vmDir, 'vm.json'), JSON.stringify(spec));
  await env.agent.vms.adoptAll();
  return { inst, serialLog: join(vmDir, 'serial.log') };
}
