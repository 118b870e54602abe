/**
 * Enrollment storm: N simulated agents discover one controller (signed UDP datagrams to its
 * responder on loopback) and enroll (CSR over HTTPS, admitted by a labels rule bound to a
 * bootstrap token that every agent presents, as the README's multi-server flow does), `--concurrency`
 * at a time. The controller is a separate `outrig controller` process, as in production; the
 * agents are in-process clients running the agent's own discovery and enrollment code.
 * Usage: npm run bench:enroll -- [--hosts 1000] [--concurrency 100] [--quick]
 * Last line: hosts=<n> seconds=<s>
 */
import { X509Certificate } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import pino from 'pino';
import { enroll } from '../src/agent/enroll.ts';
import type { Host } from '../src/model/host.ts';
import { generateKeyPair } from '../src/pki/index.ts';
import { adminApi, startControllerProcess, stopDaemon } from '../test/helpers/processes.ts';
import { tempDir } from '../test/helpers/tmp.ts';

const { values } = parseArgs({ options: { hosts: { type: 'string' }, concurrency: { type: 'string' }, quick: { type: 'boolean', default: false } } });
// --quick: 30 hosts, 10 at a time, a smoke test that the benchmark still works (npm test runs it).
const N = Number(values.hosts ?? (values.quick ? 30 : 1000));
const CONCURRENCY = Number(values.concurrency ?? (values.quick ? 10 : 100));
if (!Number.isInteger(N) || N < 1 || !Number.isInteger(CONCURRENCY) || CONCURRENCY < 1)
  throw new Error('--hosts and --concurrency must be positive whole numbers');

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function main(): Promise<void> {
  const work = tempDir('outrig-bench-enroll-');
  // Discovery on loopback only; the limits per source are lifted because every simulated agent shares 127.0.0.1.
  const ctl = await startControllerProcess(
    join(work.path, 'controller'),
    [
      '--discovery-address',
      '127.0.0.1',
      '--discovery-port',
      '0',
      '--discovery-rate',
      '1000000',
      '--max-connections-per-address',
      '100000',
      '--max-connections',
      '100000',
    ],
    {
      OUTRIG_DATA: work.path,
      OUTRIG_LOG_LEVEL: 'warn',
    },
  );
  try {
    const port = Number(/answering discovery on UDP (\d+)/.exec(ctl.output())?.[1]);
    if (!port) throw new Error(`controller did not report its discovery port: ${ctl.output()}`);
    const api = adminApi(work.path, ctl.url);
    // The authenticated path: labels narrow the rule, its token (sent only to the pinned CA) admits.
    const { token } = await api.post<{ token: string }>('/v1/enrollment-rules', {
      name: 'bench',
      kind: 'labels',
      labels: { bench: 'yes' },
      withToken: true,
      maxUses: N,
    });
    const { caFingerprint } = await api.get<{ caFingerprint: string }>('/v1/cluster');
    const log = pino({ level: 'silent' });
    const latencies: number[] = [];
    const certs: string[] = [];
    let next = 0;
    let done = 0;
    const t0 = performance.now();
    const worker = async () => {
      while (next < N) {
        const i = next++;
        const start = performance.now();
        const hostId = `bench-${String(i).padStart(5, '0')}`;
        const creds = await enroll({
          identity: { hostId, name: hostId, keys: generateKeyPair() },
          mode: {
            kind: 'discover',
            policy: { cluster: 'outrig', features: ['mtls'] },
            labels: { bench: 'yes' },
            targets: [`127.0.0.1:${port}`],
            onlyTargets: true,
            pinnedCaFingerprint: caFingerprint,
          },
          bootstrapToken: token,
          log,
        });
        latencies.push(performance.now() - start);
        certs.push(creds.certPem);
        if (++done % 100 === 0) process.stderr.write(`${done}/${N} enrolled, ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
      }
    };
    await Promise.all(Array.from({ length: Math.min(CONCURRENCY, N) }, worker));
    const seconds = (performance.now() - t0) / 1000;

    // Check the result, not just the timing: every host trusted, every certificate from the cluster CA.
    const { items } = await api.get<{ items: Host[] }>('/v1/hosts');
    const trusted = items.filter((h) => h.status.trust?.state === 'trusted' && h.status.trust.approvedBy === 'rule bench').length;
    if (trusted !== N) throw new Error(`${trusted} of ${N} hosts are trusted by the token rule`);
    const ca = new X509Certificate((await api.get<{ caCertificate: string }>('/v1/cluster')).caCertificate);
    const bad = certs.filter((c) => !new X509Certificate(c).checkIssued(ca) || !new X509Certificate(c).verify(ca.publicKey)).length;
    if (bad) throw new Error(`${bad} certificates are not from the cluster CA`);

    latencies.sort((a, b) => a - b);
    const result = {
      date: new Date().toISOString(),
      hosts: N,
      concurrency: CONCURRENCY,
      seconds: +seconds.toFixed(2),
      hostsPerSecond: +(N / seconds).toFixed(1),
      latencyMs: {
        p50: Math.round(percentile(latencies, 50)),
        p90: Math.round(percentile(latencies, 90)),
        p99: Math.round(percentile(latencies, 99)),
        max: Math.round(latencies.at(-1)!),
      },
    };
    mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
    writeFileSync(new URL(`./results/enroll-${result.date.replace(/[:.]/g, '-')}.json`, import.meta.url), JSON.stringify(result, null, 2) + '\n');
    process.stderr.write(
      `\n${N} hosts enrolled in ${result.seconds} s (${result.hostsPerSecond} hosts/s, ${CONCURRENCY} at a time); ` +
        `per host p50 ${result.latencyMs.p50} ms, p90 ${result.latencyMs.p90} ms, p99 ${result.latencyMs.p99} ms\n`,
    );
    process.stdout.write(`hosts=${N} seconds=${result.seconds}\n`);
  } finally {
    await stopDaemon(ctl);
    work.remove();
  }
}

await main();
