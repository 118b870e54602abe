/**
 * Enrollment rules, pure: which rules may be made, and whether a rule admits an enrolling host.
 * A host's id and labels come from its discover message, which anyone can send, so they only
 * narrow a rule; what admits is a bootstrap token or a host key registered in advance.
 */
import { timingSafeEqual } from 'node:crypto';
import { ruleAuthentication, type EnrollmentRule, type EnrollmentRuleSpec } from '../../model/trust.ts';

/** What an operator asks for when adding a rule. */
export interface RuleInput {
  kind: EnrollmentRuleSpec['kind'];
  maxUses?: number;
  hostIds?: string[];
  labels?: Record<string, string>;
  keyFingerprints?: string[];
  /** host-ids and labels rules: also require a bootstrap token (made and returned once). */
  withToken?: boolean;
  /** Admit on claims alone, knowing that anyone on the network can make them. */
  allowUnauthenticated?: boolean;
  expiresAt?: string;
}

/** What an enrolling host presents: claims (id, labels) and proofs (token, the key its CSR proved). */
export interface RuleRequest {
  hostId: string;
  labels: Record<string, string>;
  tokenSha256?: string;
  keyFingerprint: string;
}

/** One spelling of a fingerprint (`sha256:` prefix and colons allowed), or undefined if it is not one. */
export function normFingerprint(s: string): string | undefined {
  const hex = s
    .trim()
    .toLowerCase()
    .replace(/^sha256:/, '')
    .replace(/:/g, '');
  return /^[0-9a-f]{64}$/.test(hex) ? hex : undefined;
}

export function maxUsesOf(spec: EnrollmentRuleSpec): number {
  return spec.maxUses ?? (spec.kind === 'token' ? 1 : Infinity);
}

/** Why a rule may not be made as asked, or undefined when it may. */
export function ruleProblem(r: RuleInput): { code: 'invalid_request' | 'unauthenticated_rule'; message: string } | undefined {
  const message = invalidRule(r);
  if (message) return { code: 'invalid_request', message };
  const bound = r.kind === 'token' || r.kind === 'keys' || r.withToken || !!r.keyFingerprints?.length;
  if (!bound && !r.allowUnauthenticated)
    return {
      code: 'unauthenticated_rule',
      message: `a ${r.kind} rule admits on what hosts claim, which anyone on the network can claim: add a bootstrap token (withToken) or the hosts' key fingerprints (keyFingerprints), or set allowUnauthenticated to admit them anyway`,
    };
  if (bound && r.allowUnauthenticated)
    return { code: 'invalid_request', message: 'allowUnauthenticated goes only with a rule that has no token and no key fingerprints' };
  return undefined;
}

function invalidRule(r: RuleInput): string | undefined {
  const { kind } = r;
  if (kind === 'host-ids' && !r.hostIds?.length) return 'a host-ids rule needs hostIds';
  if (kind === 'labels' && !Object.keys(r.labels ?? {}).length) return 'a labels rule needs labels';
  if (kind === 'keys' && !r.keyFingerprints?.length) return 'a keys rule needs keyFingerprints';
  if (kind !== 'host-ids' && r.hostIds?.length) return 'hostIds only go with kind host-ids';
  if (kind !== 'labels' && Object.keys(r.labels ?? {}).length) return 'labels only go with kind labels';
  if (kind === 'token' && r.keyFingerprints?.length) return 'keyFingerprints do not go with kind token';
  if (r.withToken && kind !== 'host-ids' && kind !== 'labels')
    return `withToken goes with kind host-ids or labels (a ${kind} rule ${kind === 'token' ? 'is a token' : 'has its keys'})`;
  const bad = (r.keyFingerprints ?? []).find((f) => !normFingerprint(f));
  if (bad !== undefined) return `'${bad}' is not a key fingerprint (64 hex digits of SHA-256, as 'outrig agent --print-identity' shows)`;
  return undefined;
}

/** The spec stored for a valid input (fingerprints in one spelling); the token's hash is added by the caller. */
export function ruleSpec(r: RuleInput, tokenSha256: string | undefined): EnrollmentRuleSpec {
  return {
    kind: r.kind,
    tokenSha256,
    maxUses: r.maxUses,
    hostIds: r.hostIds?.length ? r.hostIds : undefined,
    labels: Object.keys(r.labels ?? {}).length ? r.labels : undefined,
    keyFingerprints: r.keyFingerprints?.length ? r.keyFingerprints.map((f) => normFingerprint(f)!) : undefined,
    unauthenticated: r.allowUnauthenticated ? true : undefined,
    expiresAt: r.expiresAt,
  };
}

function sameHash(a: string | undefined, b: string): boolean {
  return !!a && a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b));
}

/**
 * Whether a rule admits an enrolling host: active, not expired, not used up, and every condition
 * it has holds. A rule stored without a token or keys admits only if it was made unauthenticated
 * on purpose (rules of earlier versions were not, and now leave hosts to an operator).
 */
export function ruleAdmits(r: EnrollmentRule, req: RuleRequest, now: Date): boolean {
  const s = r.spec;
  if (r.status.phase !== 'active') return false;
  if (s.expiresAt && Date.parse(s.expiresAt) < now.getTime()) return false;
  if (r.status.uses >= maxUsesOf(s)) return false;
  const matcher = { token: !!s.tokenSha256, 'host-ids': !!s.hostIds?.length, labels: !!Object.keys(s.labels ?? {}).length, keys: !!s.keyFingerprints?.length }[
    s.kind
  ];
  if (!matcher) return false;
  if (ruleAuthentication(s) === 'none' && !s.unauthenticated) return false;
  if (s.tokenSha256 && !sameHash(req.tokenSha256, s.tokenSha256)) return false;
  if (s.keyFingerprints?.length && !s.keyFingerprints.includes(req.keyFingerprint)) return false;
  if (s.hostIds?.length && !s.hostIds.includes(req.hostId)) return false;
  return Object.entries(s.labels ?? {}).every(([k, v]) => req.labels[k] === v);
}
