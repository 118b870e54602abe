/**
 * `npm ci` on the Node.js the README names must not warn about engines: every locked package's
 * `engines.node` has to accept Node 20. (cookie@2, pulled in by fastify's light-my-request, wants
 * Node 22; package.json pins light-my-request through `overrides`.)
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import semver from 'semver';

const lock = JSON.parse(readFileSync(new URL('../../../package-lock.json', import.meta.url), 'utf8')) as {
  packages: Record<string, { engines?: { node?: string } | string[]; optional?: boolean; dev?: boolean }>;
};
const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { engines: { node: string } };

test('every locked package accepts the Node.js floor package.json declares', () => {
  const floor = semver.minVersion(pkg.engines.node);
  assert.ok(floor, `package.json engines.node ${pkg.engines.node} has no minimum`);
  assert.equal(floor.major, 20, 'the README says Node.js 20');
  const refused = Object.entries(lock.packages)
    .filter(([, p]) => p.engines && !Array.isArray(p.engines) && p.engines.node)
    .filter(
      ([, p]) =>
        !semver.satisfies('20.0.0', (p.engines as { node: string }).node) && !semver.satisfies(process.versions.node, (p.engines as { node: string }).node),
    )
    .map(([name, p]) => `${name} (engines.node ${(p.engines as { node: string }).node})`);
  assert.deepEqual(refused, [], `these would make npm ci warn on Node ${process.versions.node}`);
});
