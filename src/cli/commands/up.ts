/** `outrig up`: the all-in-one cloud on this machine (controller + agent), optionally with a demo VM. */
import { join } from 'node:path';
import { Option, type Command } from 'commander';
import { guardProcess } from '../../common/crash-guard.ts';
import { ensurePrivateDir } from '../../common/secrets.ts';
import { isLoopback } from '../../common/route-source.ts';
import { createLogger } from '../../common/log.ts';
import { dataRoot, DEFAULT_API_HOST, DEFAULT_API_PORT } from '../../common/paths.ts';
import { ensureRequirements, missingFeaturesNotice, VM_REQUIREMENTS } from '../../common/system-requirements.ts';
import { VERSION } from '../../common/version.ts';
import { buildTestGuest } from '../../hypervisor/index.ts';
import { getCondition } from '../../model/conditions.ts';
import type { Host } from '../../model/host.ts';
import type { Image } from '../../model/image.ts';
import type { Instance } from '../../model/instance.ts';
import { ApiClient } from '../client.ts';
import { contextOf } from '../context.ts';
import { CliError } from '../errors.ts';
import { printJson } from '../output.ts';
import { parseIntStrict, parseListen } from '../parse.ts';
import { waitFor } from '../wait.ts';
import { registerImage, testImageDir } from './image.ts';
import { untilSignal } from '../signals.ts';
import { diskPolicyOf, diskPolicyOptions, type DiskPolicyFlags } from './daemons.ts';
import { loadHostId } from '../../agent/index.ts';
import { CredentialStore } from '../../agent/index.ts';
import { keyFingerprint, publicKeyB64 } from '../../pki/index.ts';

const DEMO = 'demo';
const LOCAL_RULE = 'local-host';

async function ensureTestImage(api: ApiClient, say: (s: string) => void): Promise<Image> {
  const existing = await api.find<Image>('/v1/images/test');
  if (existing?.status.phase === 'ready') return existing;
  say('building the test guest image (first run only)...');
  const dir = testImageDir();
  const m = await buildTestGuest({ outDir: dir });
  return registerImage(api, dir, m, { log: say });
}

async function ensureDemo(api: ApiClient, quiet: boolean, timeoutMs: number): Promise<Instance> {
  let demo = await api.find<Instance>(`/v1/instances/${DEMO}`);
  if (!demo) demo = await api.post<Instance>('/v1/instances', { name: DEMO, image: 'test', vcpus: 1, memoryMiB: 256 });
  else if (demo.spec.powerState !== 'running' || demo.status.phase === 'failed') demo = await api.post<Instance>(`/v1/instances/${DEMO}/start`);
  const id = demo.id;
  return (await waitFor<Instance>({
    poll: () => api.find<Instance>(`/v1/instances/${id}`),
    done: (i) => i?.status.phase === 'running' && getCondition(i.status.conditions, 'GuestReady')?.status === 'True',
    fail: (i) => (!i ? 'the demo instance disappeared' : i.status.phase === 'failed' ? `the demo instance failed: ${i.status.message}` : undefined),
    describe: (i) => `demo instance: ${i?.status.phase ?? 'gone'}${i?.status.phase === 'running' ? ', waiting for the guest to boot' : ''}`,
    timeoutMs,
    quiet,
  }))!;
}

/** Stops every running instance on this host through the API, so desired state says stopped too. */
async function stopInstances(api: ApiClient, hostId: string, timeoutMs: number, say: (s: string) => void): Promise<void> {
  const { items } = await api.get<{ items: Instance[] }>('/v1/instances');
  const mine = items.filter((i) => i.status.hostId === hostId && i.spec.powerState === 'running');
  if (!mine.length) return;
  say(`stopping ${mine.length} instance(s): ${mine.map((i) => i.name).join(', ')}`);
  await Promise.all(mine.map((i) => api.post(`/v1/instances/${i.id}/stop`)));
  await waitFor<Instance[]>({
    poll: async () => (await api.get<{ items: Instance[] }>('/v1/instances')).items.filter((i) => mine.some((m) => m.id === i.id)),
    done: (list) => !!list && list.every((i) => i.status.phase === 'stopped' || i.status.phase === 'failed'),
    describe: (list) => `stopped ${list?.filter((i) => i.status.phase === 'stopped').length ?? 0}/${mine.length}`,
    timeoutMs,
    quiet: true,
  });
}

export function upCommand(program: Command): void {
  program
    .command('up')
    .description('run an all-in-one cloud on this machine (controller + agent); Ctrl-C stops it and its VMs')
    .option('--listen <host:port>', 'API address', `${DEFAULT_API_HOST}:${DEFAULT_API_PORT}`)
    .option('--demo', 'boot a demo instance from the test image')
    .option('--cluster <name>', 'cluster name offered to discovering hosts', 'outrig')
    .option('--no-discovery', 'do not answer discovery datagrams (only a --listen address beyond loopback answers them anyway)')
    .addOption(
      new Option('--stop-timeout <seconds>', 'how long a stop waits for a guest before forcing it').default(30).argParser(parseIntStrict('--stop-timeout')),
    )
    .addOption(diskPolicyOptions.overcommit())
    .addOption(diskPolicyOptions.pressureFree())
    .addOption(diskPolicyOptions.pressureMinFree())
    .action(async (o: { listen: string; demo?: boolean; cluster: string; discovery: boolean; stopTimeout: number } & DiskPolicyFlags, cmd: Command) => {
      const { json } = contextOf(cmd);
      const say = (s: string) => {
        if (!json) process.stderr.write(s + '\n');
      };
      ensureRequirements(VM_REQUIREMENTS, say);
      const notice = missingFeaturesNotice();
      if (notice) say(notice);
      const root = dataRoot();
      const logs = join(root, 'logs');
      // Before anything is written there: the data root holds the admin token, keys, logs and guests' disks.
      for (const d of [root, logs, join(root, 'agent')]) await ensurePrivateDir(d);
      const { host, port } = parseListen(o.listen, DEFAULT_API_HOST);
      say(`Outrig ${VERSION}: data in ${root}, logs in ${logs}`);
      if (isLoopback(host)) say(`the API listens on ${host} only: other servers cannot join (--listen 0.0.0.0:${port} --cluster NAME lets them discover it)`);

      // Loaded here, not at the top: other commands (disk serve) should not pay for the server stack.
      const { startController } = await import('../../server/index.ts');
      const { startAgent } = await import('../../agent/index.ts');
      const controllerLog = createLogger('controller', { file: join(logs, 'controller.log') });
      // One process serves the API and runs the agent: a stray error in either must not end both.
      guardProcess(controllerLog);
      const controller = await startController({
        dataDir: join(root, 'controller'),
        host,
        port,
        log: controllerLog,
        allocation: diskPolicyOf(o),
        cluster: { name: o.cluster },
        // Other servers can join only an API they can reach: a loopback one answers no discovery.
        discovery: o.discovery && !isLoopback(host) ? {} : undefined,
      }).catch((e: NodeJS.ErrnoException) => {
        if (e.code === 'EADDRINUSE')
          throw new CliError(`${o.listen} is already in use: is another 'outrig up' or controller running? Use --listen to pick another address.`);
        throw e;
      });
      if (controller.discoveryPort)
        say(`answering discovery on UDP ${controller.discoveryPort} as cluster '${o.cluster}' (CA fingerprint ${controller.trust.ca.fingerprint})`);
      say('probing the accelerator and starting the agent...');
      // This machine's own agent is admitted by a rule naming its host id and its key: the id alone
      // is a claim anyone on the network could make. A new key (pki/ removed) gets a new rule.
      const agentDir = join(root, 'agent');
      const hostId = await loadHostId(join(agentDir, 'host-id'));
      const fingerprint = keyFingerprint(publicKeyB64((await new CredentialStore(agentDir).keys()).publicKey));
      const local = await controller.store.enrollmentRules.find(LOCAL_RULE);
      if (!local?.spec.keyFingerprints?.includes(fingerprint)) {
        if (local) await controller.store.enrollmentRules.delete(local.id);
        await controller.trust.addRule(LOCAL_RULE, { kind: 'host-ids', hostIds: [hostId], keyFingerprints: [fingerprint] });
      }
      const agent = await startAgent({
        dataDir: agentDir,
        join: { kind: 'direct', controllerUrl: controller.url, caPem: controller.trust.ca.certPem },
        stopTimeoutMs: o.stopTimeout * 1000,
        log: createLogger('agent', { file: join(logs, 'agent.log') }),
      }).catch(async (e: unknown) => {
        await controller.close();
        throw e;
      });
      const api = new ApiClient(controller.url, { ca: controller.trust.ca.certPem, token: controller.adminToken });
      try {
        await waitFor<Host>({
          poll: () => api.find<Host>(`/v1/hosts/${agent.hostId}`),
          done: (h) => h?.status.phase === 'ready',
          describe: (h) => `host ${agent.name}: ${h?.status.phase ?? 'registering'}`,
          timeoutMs: 30_000,
          quiet: json,
        });
        say(`host ${agent.name} ready; accelerator: ${agent.kvm.usable ? 'KVM' : `TCG (KVM unusable: ${agent.kvm.reason})`}`);
        await ensureTestImage(api, say);
        let demo: Instance | undefined;
        if (o.demo) {
          demo = await ensureDemo(api, json, 300_000);
          const fwd = demo.status.network.forwards.find((f) => f.guestPort === 80);
          if (fwd) {
            const body = await fetch(`http://${fwd.hostAddress}:${fwd.hostPort}/`)
              .then((r) => r.text())
              .catch((e: Error) => `(not reachable yet: ${e.message})`);
            say(`demo guest answers on http://${fwd.hostAddress}:${fwd.hostPort}/ : ${body.trim()}`);
          }
        }
        // Another terminal finds this controller only with the same environment: say it when it is not the default.
        const env =
          (process.env.OUTRIG_DATA ? `export OUTRIG_DATA=${root}\n  ` : '') +
          (controller.url === `https://${DEFAULT_API_HOST}:${DEFAULT_API_PORT}` ? '' : `export OUTRIG_URL=${controller.url}\n  `);
        if (json) printJson({ url: controller.url, dataDir: root, hostId: agent.hostId, demo });
        else
          process.stdout.write(
            `\nOutrig is up. API: ${controller.url}  (OpenAPI: ${controller.url}/v1/openapi.json)\n\n` +
              `Try, in another terminal:\n  ${env}npx outrig host list\n  npx outrig instance list\n` +
              (demo ? `  npx outrig instance console ${DEMO} --follow\n` : '') +
              `  npx outrig instance create web1 --image test --vcpus 1 --memory 256\n\n` +
              `Press Ctrl-C to stop; running instances are stopped cleanly first.\n`,
          );
      } catch (e) {
        await agent.close();
        await controller.close();
        throw e;
      }
      await untilSignal(async () => {
        say('\nshutting down...');
        let stopped = true;
        await stopInstances(api, agent.hostId, (o.stopTimeout + 15) * 1000, say).catch((e: Error) => {
          stopped = false;
          say(`could not stop every instance: ${e.message}`);
        });
        // With every VM stopped, the storage daemon can go too (it checkpoints every volume).
        await agent.close({ stopDiskd: stopped });
        await controller.close();
        say('stopped.');
      });
    });
}
