/**
 * Certificate profiles: what each kind of certificate may do and which names it carries.
 * host: an agent's client identity (CN and SAN URI name the host id).
 * server: a controller's TLS server identity (SAN IPs and DNS names it answers on).
 * operator: a person or tool using the operator API with a certificate instead of a token.
 */
import { x509 } from './x509.ts';

export type Profile = 'host' | 'server' | 'operator';

export const HOST_URI_PREFIX = 'urn:outrig:host:';

export interface ProfileInput {
  /** host id for host, controller name for server, operator name for operator */
  name: string;
  /** server: IP addresses and DNS names */
  ips?: string[];
  dnsNames?: string[];
}

export function subjectFor(profile: Profile, name: string): string {
  const ou = { host: 'hosts', server: 'controllers', operator: 'operators' }[profile];
  return `CN=${name}, OU=${ou}, O=Outrig`;
}

export function extensionsFor(profile: Profile, input: ProfileInput): x509.Extension[] {
  const ku = new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyAgreement, true);
  const bc = new x509.BasicConstraintsExtension(false, undefined, true);
  switch (profile) {
    case 'host':
      return [bc, ku, new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth], true), new x509.SubjectAlternativeNameExtension([{ type: 'url', value: `${HOST_URI_PREFIX}${input.name}` }])];
    case 'operator':
      return [bc, ku, new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth], true)];
    case 'server':
      return [
        bc,
        ku,
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth], true),
        new x509.SubjectAlternativeNameExtension([...(input.dnsNames ?? []).map((v) => ({ type: 'dns' as const, value: v })), ...(input.ips ?? []).map((v) => ({ type: 'ip' as const, value: v }))]),
      ];
  }
}

/** Reads the profile and name back from a certificate's subject (OU and CN). */
export function profileOf(cert: x509.X509Certificate): { profile: Profile | undefined; name: string | undefined } {
  const ou = cert.subjectName.getField('OU')[0];
  const cn = cert.subjectName.getField('CN')[0];
  const profile = ou === 'hosts' ? 'host' : ou === 'controllers' ? 'server' : ou === 'operators' ? 'operator' : undefined;
  return { profile, name: cn };
}
