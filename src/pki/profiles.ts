/**
 * Certificate profiles: what each kind of certificate may do and which names it carries.
 * host: an agent's client identity (CN and SAN URI name the host id).
 * server: a controller's TLS server identity (SAN IPs and DNS names it answers on); agents accept
 *   discovery answers signed only by this profile.
 * authenticator: a port authenticator's RADIUS server identity (serverAuth, like a controller's, but
 *   its own OU: whoever runs a port authenticator holds its key, and must not pass for a controller).
 * operator: a person or tool using the operator API with a certificate instead of a token.
 * principal: an instance principal of a dedicated host cluster: a host's identity towards its
 *   switch port (802.1X EAP-TLS), naming the virtual networks the port may join (VNET_OID below).
 */
import { x509 } from './x509.ts';

export type Profile = 'host' | 'server' | 'authenticator' | 'operator' | 'principal';

/**
 * The virtual-network extension of instance principal certificates. OID 1.3.6.1.4.1.55555.1.1
 * (the arc 1.3.6.1.4.1.55555 is a placeholder, not a registered enterprise number: an operator
 * with its own PEN can re-root it). Non-critical. extnValue holds the DER of one UTF8String: the
 * networks as `vnet-<segment>` separated by commas, the first being the network the host's port
 * joins (`vnet-100,vnet-205`). A string, not an ASN.1 sequence, so RADIUS servers that expose
 * extensions as text (FreeRADIUS's TLS-Client-Cert-<oid>) can match it with a regular expression.
 */
export const VNET_OID = '1.3.6.1.4.1.55555.1.1';

export const HOST_URI_PREFIX = 'urn:outrig:host:';

export interface ProfileInput {
  /** host id for host, controller name for server, operator name for operator */
  name: string;
  /** server: IP addresses and DNS names */
  ips?: string[];
  dnsNames?: string[];
  /** principal: the host id (SAN URI) and the segments of its virtual networks, the port's first. */
  hostId?: string;
  segments?: number[];
}

/** DER of a UTF8String (short or long form length). */
function utf8StringDer(text: string): ArrayBuffer {
  const body = Buffer.from(text, 'utf8');
  const len = body.length < 128 ? [body.length] : body.length < 256 ? [0x81, body.length] : [0x82, body.length >> 8, body.length & 255];
  return Uint8Array.from([0x0c, ...len, ...body]).buffer;
}

export function vnetExtension(segments: number[]): x509.Extension {
  if (!segments.length) throw new Error('a principal certificate names at least one virtual network');
  return new x509.Extension(VNET_OID, false, utf8StringDer(segments.map((s) => `vnet-${s}`).join(',')));
}

/** The segments a certificate's virtual-network extension names (empty when it has none or it is malformed). */
export function vnetSegments(cert: x509.X509Certificate): number[] {
  const ext = cert.getExtension(VNET_OID);
  if (!ext) return [];
  const v = Buffer.from(ext.value);
  if (v[0] !== 0x0c) return [];
  const [len, off] = v[1]! < 128 ? [v[1]!, 2] : v[1] === 0x81 ? [v[2]!, 3] : [(v[2]! << 8) | v[3]!, 4];
  const text = v.subarray(off, off + len).toString('utf8');
  const out: number[] = [];
  for (const part of text.split(',')) {
    const m = /^vnet-(\d{1,8})$/.exec(part.trim());
    if (!m) return [];
    out.push(Number(m[1]));
  }
  return out;
}

/** The OU that marks each profile; certificates name their profile there. */
const OU: Record<Profile, string> = { host: 'hosts', server: 'controllers', authenticator: 'authenticators', operator: 'operators', principal: 'principals' };
/** The extended key usage each profile gets, and must have to count as that profile. */
const EKU: Record<Profile, string> = {
  host: x509.ExtendedKeyUsage.clientAuth,
  server: x509.ExtendedKeyUsage.serverAuth,
  authenticator: x509.ExtendedKeyUsage.serverAuth,
  operator: x509.ExtendedKeyUsage.clientAuth,
  principal: x509.ExtendedKeyUsage.clientAuth,
};

export function subjectFor(profile: Profile, name: string): string {
  return `CN=${name}, OU=${OU[profile]}, O=Outrig`;
}

export function extensionsFor(profile: Profile, input: ProfileInput): x509.Extension[] {
  const ku = new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyAgreement, true);
  const bc = new x509.BasicConstraintsExtension(false, undefined, true);
  const eku = new x509.ExtendedKeyUsageExtension([EKU[profile]], true);
  switch (profile) {
    case 'host':
      return [bc, ku, eku, new x509.SubjectAlternativeNameExtension([{ type: 'url', value: `${HOST_URI_PREFIX}${input.name}` }])];
    case 'operator':
      return [bc, ku, eku];
    case 'principal':
      return [
        bc,
        ku,
        eku,
        new x509.SubjectAlternativeNameExtension([{ type: 'url', value: `${HOST_URI_PREFIX}${input.hostId ?? input.name}` }]),
        vnetExtension(input.segments ?? []),
      ];
    case 'server':
    case 'authenticator':
      return [
        bc,
        ku,
        eku,
        new x509.SubjectAlternativeNameExtension([
          ...(input.dnsNames ?? []).map((v) => ({ type: 'dns' as const, value: v })),
          ...(input.ips ?? []).map((v) => ({ type: 'ip' as const, value: v })),
        ]),
      ];
  }
}

/** Reads the profile and name back from a certificate's subject (OU and CN). */
export function profileOf(cert: x509.X509Certificate): { profile: Profile | undefined; name: string | undefined } {
  const ou = cert.subjectName.getField('OU')[0];
  const cn = cert.subjectName.getField('CN')[0];
  const profile = (Object.keys(OU) as Profile[]).find((p) => OU[p] === ou);
  return { profile, name: cn };
}

/** Whether a certificate is of a profile: its OU says so and it carries that profile's extended key usage. */
export function hasProfile(cert: x509.X509Certificate, profile: Profile): boolean {
  const eku = cert.getExtension(x509.ExtendedKeyUsageExtension);
  return profileOf(cert).profile === profile && !!eku?.usages.includes(EKU[profile]);
}
