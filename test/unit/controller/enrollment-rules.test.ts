import assert from 'node:assert/strict';
import { test } from 'node:test';
import { normFingerprint, ruleAdmits, ruleProblem, ruleSpec, type RuleInput, type RuleRequest } from '../../../src/controller/trust/enrollment-rules.ts';
import type { EnrollmentRule, EnrollmentRuleSpec } from '../../../src/model/trust.ts';

const FP = 'ab'.repeat(32);
const OTHER_FP = 'cd'.repeat(32);
const TOKEN = 'e3'.repeat(32);

const rule = (spec: EnrollmentRuleSpec, status: Partial<EnrollmentRule['status']> = {}): EnrollmentRule => ({
  id: 'r-1',
  name: 'r',
  labels: {},
  annotations: {},
  spec,
  status: { phase: 'active', conditions: [], uses: 0, admitted: [], ...status },
  createdAt: '',
  updatedAt: '',
  generation: 1,
});
const now = new Date('2026-01-01T00:00:00Z');
const req = (o: Partial<RuleRequest> = {}): RuleRequest => ({ hostId: 'h-1', labels: {}, keyFingerprint: OTHER_FP, ...o });

test('claims alone never admit: a labels or host-ids rule needs a token or a registered key', () => {
  const claimed = req({ hostId: 'h-1', labels: { rack: '1' } });
  assert.equal(ruleAdmits(rule({ kind: 'labels', labels: { rack: '1' } }), claimed, now), false, 'an old rule without proofs admits nobody');
  assert.equal(ruleAdmits(rule({ kind: 'host-ids', hostIds: ['h-1'] }), claimed, now), false);
  assert.equal(
    ruleAdmits(rule({ kind: 'labels', labels: { rack: '1' }, unauthenticated: true }), claimed, now),
    true,
    'unless made unauthenticated on purpose',
  );

  const withToken = rule({ kind: 'labels', labels: { rack: '1' }, tokenSha256: TOKEN });
  assert.equal(ruleAdmits(withToken, claimed, now), false);
  assert.equal(ruleAdmits(withToken, { ...claimed, tokenSha256: 'ff'.repeat(32) }, now), false);
  assert.equal(ruleAdmits(withToken, { ...claimed, tokenSha256: 'short' }, now), false, 'a hash of another length is no match (and no exception)');
  assert.equal(ruleAdmits(withToken, { ...claimed, tokenSha256: TOKEN }, now), true);
  assert.equal(ruleAdmits(withToken, { ...claimed, labels: { rack: '2' }, tokenSha256: TOKEN }, now), false, 'the labels still narrow it');

  const withKey = rule({ kind: 'host-ids', hostIds: ['h-1'], keyFingerprints: [FP] });
  assert.equal(ruleAdmits(withKey, claimed, now), false);
  assert.equal(ruleAdmits(withKey, { ...claimed, keyFingerprint: FP }, now), true);
  assert.equal(ruleAdmits(withKey, { ...claimed, hostId: 'h-2', keyFingerprint: FP }, now), false);
  assert.equal(ruleAdmits(rule({ kind: 'keys', keyFingerprints: [FP] }), req({ keyFingerprint: FP }), now), true);
});

test('phase, expiry and uses still apply; a kind without its own condition admits nobody', () => {
  const token = { kind: 'token' as const, tokenSha256: TOKEN };
  const ok = req({ tokenSha256: TOKEN });
  assert.equal(ruleAdmits(rule(token), ok, now), true);
  assert.equal(ruleAdmits(rule(token, { uses: 1 }), ok, now), false, 'a token admits one host unless told otherwise');
  assert.equal(ruleAdmits(rule({ ...token, maxUses: 2 }, { uses: 1 }), ok, now), true);
  assert.equal(ruleAdmits(rule({ ...token, expiresAt: '2025-12-31T23:59:59Z' }), ok, now), false);
  assert.equal(ruleAdmits(rule(token, { phase: 'used-up' }), ok, now), false);
  assert.equal(ruleAdmits(rule({ kind: 'labels', tokenSha256: TOKEN }), ok, now), false, 'a labels rule with no labels');
  assert.equal(ruleAdmits(rule({ kind: 'token' }), req(), now), false, 'a token rule with no token');
});

test('rules that would admit on claims are refused unless allowed; inputs that contradict themselves are refused', () => {
  const code = (r: RuleInput) => ruleProblem(r)?.code;
  assert.equal(code({ kind: 'labels', labels: { a: 'b' } }), 'unauthenticated_rule');
  assert.equal(code({ kind: 'host-ids', hostIds: ['h-1'] }), 'unauthenticated_rule');
  assert.match(ruleProblem({ kind: 'labels', labels: { a: 'b' } })!.message, /anyone on the network can claim/);
  for (const fine of [
    { kind: 'token' },
    { kind: 'keys', keyFingerprints: [FP] },
    { kind: 'labels', labels: { a: 'b' }, withToken: true },
    { kind: 'host-ids', hostIds: ['h-1'], keyFingerprints: [FP] },
    { kind: 'labels', labels: { a: 'b' }, allowUnauthenticated: true },
  ] as RuleInput[])
    assert.equal(ruleProblem(fine), undefined, JSON.stringify(fine));
  for (const bad of [
    { kind: 'labels' },
    { kind: 'host-ids', hostIds: [] },
    { kind: 'keys' },
    { kind: 'token', labels: { a: 'b' } },
    { kind: 'token', withToken: true },
    { kind: 'keys', keyFingerprints: ['nope'] },
    { kind: 'token', allowUnauthenticated: true },
    { kind: 'labels', labels: { a: 'b' }, withToken: true, allowUnauthenticated: true },
  ] as RuleInput[])
    assert.equal(code(bad), 'invalid_request', JSON.stringify(bad));
});

test('fingerprints have one spelling; the stored spec keeps only what the rule uses', () => {
  const colons = FP.match(/../g)!.join(':').toUpperCase();
  assert.equal(normFingerprint(`sha256:${colons}`), FP);
  assert.equal(normFingerprint(FP.slice(2)), undefined);
  const spec = ruleSpec({ kind: 'host-ids', hostIds: ['h-1'], labels: {}, keyFingerprints: [`SHA256:${colons}`], withToken: false }, undefined);
  assert.deepEqual(JSON.parse(JSON.stringify(spec)), { kind: 'host-ids', hostIds: ['h-1'], keyFingerprints: [FP] });
  assert.equal(ruleSpec({ kind: 'labels', labels: { a: 'b' }, allowUnauthenticated: true }, undefined).unauthenticated, true);
});
