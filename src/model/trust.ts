import { Type, type Static } from 'typebox';
import { Condition, Labels, resourceSchema, type Resource } from './common.ts';

/** An issued certificate: the record revocation and `host show` read. Named by its serial. */
export const CertificateSpec = Type.Object({
  profile: Type.String(),
  subject: Type.String(),
  hostId: Type.Optional(Type.String()),
  fingerprint: Type.String(),
  notBefore: Type.String(),
  notAfter: Type.String(),
});
export type CertificateSpec = Static<typeof CertificateSpec>;

export const CertificateStatus = Type.Object({
  phase: Type.Enum(['valid', 'revoked'] as const),
  conditions: Type.Array(Condition),
  revokedAt: Type.Optional(Type.String()),
});
export type CertificateStatus = Static<typeof CertificateStatus>;

export const CertificateResource = resourceSchema('Certificate', CertificateSpec, CertificateStatus);
export type Certificate = Resource<CertificateSpec, CertificateStatus>;

export const ENROLL_RULE_KINDS = ['token', 'host-ids', 'labels', 'keys'] as const;

/**
 * A rule that admits enrolling hosts without an operator. What a host announces (its id, its
 * labels) is a claim anyone can make, so a rule must also bind to something a stranger cannot
 * have: a bootstrap token, or the fingerprint of the host's key registered in advance. A rule
 * without either admits only if it was made with `unauthenticated: true`, knowingly.
 */
export const EnrollmentRuleSpec = Type.Object({
  kind: Type.Enum(ENROLL_RULE_KINDS),
  /** SHA-256 (hex) of the bootstrap token; the token itself is shown once, at creation. */
  tokenSha256: Type.Optional(Type.String()),
  /** How many hosts the rule admits (token rules: 1 unless set). */
  maxUses: Type.Optional(Type.Integer({ minimum: 1 })),
  hostIds: Type.Optional(Type.Array(Type.String())),
  labels: Type.Optional(Labels),
  /** SHA-256 (hex) of the SubjectPublicKeyInfo DER of each host key the rule admits. */
  keyFingerprints: Type.Optional(Type.Array(Type.String())),
  /** Made on purpose to admit on claims alone (anyone on the network can claim them). */
  unauthenticated: Type.Optional(Type.Boolean()),
  expiresAt: Type.Optional(Type.String()),
});
export type EnrollmentRuleSpec = Static<typeof EnrollmentRuleSpec>;

/** How a rule authenticates the hosts it admits; `none` admits on claims anyone can make. */
export function ruleAuthentication(spec: EnrollmentRuleSpec): 'token' | 'key' | 'token+key' | 'none' {
  const t = !!spec.tokenSha256;
  const k = !!spec.keyFingerprints?.length;
  return t && k ? 'token+key' : t ? 'token' : k ? 'key' : 'none';
}

export const EnrollmentRuleStatus = Type.Object({
  phase: Type.Enum(['active', 'used-up', 'expired'] as const),
  conditions: Type.Array(Condition),
  uses: Type.Integer(),
  admitted: Type.Array(Type.String()),
});
export type EnrollmentRuleStatus = Static<typeof EnrollmentRuleStatus>;

export const EnrollmentRuleResource = resourceSchema('EnrollmentRule', EnrollmentRuleSpec, EnrollmentRuleStatus);
export type EnrollmentRule = Resource<EnrollmentRuleSpec, EnrollmentRuleStatus>;

const TRUST_STATES = ['pending', 'trusted', 'rejected', 'revoked'] as const;

/** A host's standing with the cluster, kept in its status. */
export const HostTrust = Type.Object({
  state: Type.Enum(TRUST_STATES),
  /** SPKI DER (base64) the host proved in discovery; its certificates carry this key. */
  publicKey: Type.String(),
  /** The request waiting for approval. */
  csr: Type.Optional(Type.String()),
  labels: Type.Optional(Labels),
  requestedAt: Type.String(),
  approvedBy: Type.Optional(Type.String()),
  /** The current certificate, kept until the host has collected it. */
  certificate: Type.Optional(Type.String()),
  certSerial: Type.Optional(Type.String()),
  certNotAfter: Type.Optional(Type.String()),
});
export type HostTrust = Static<typeof HostTrust>;
