/**
 * The RADIUS side of port authentication: a standalone FreeRADIUS configuration (nothing from
 * /etc/freeradius) that runs EAP-TLS against the cluster CA and its revocation list, reads the
 * virtual-network extension of the host's principal certificate, answers with the network as
 * RADIUS tunnel attributes (as switches take a VLAN assignment), and writes each decision on a
 * line the port controller follows. Pure: returns file contents.
 *
 * Why FreeRADIUS and not a RADIUS server of our own: EAP-TLS is a TLS state machine carried in
 * fragments; FreeRADIUS is the implementation switches are tested against, and it checks chains
 * and CRLs with OpenSSL. Outrig owns the policy (which certificate lands in which network) and the
 * enforcement on the port (port-controller.ts), which hostapd's wired driver does not do.
 */
import { VNET_OID } from '../pki/index.ts';

interface RadiusPaths {
  dir: string;
  /** The RADIUS server's certificate and key (issued by the cluster CA, profile server). */
  cert: string;
  key: string;
  /** The cluster CA and its current CRL in one file (check_crl needs the CRL beside the CA). */
  caAndCrl: string;
  /** Where decisions go, one line each. */
  decisions: string;
}

interface RadiusOptions {
  paths: RadiusPaths;
  /** Shared with hostapd; never logged. */
  secret: string;
  authPort: number;
}

/** The request attribute FreeRADIUS makes of the extension once the dictionary names it. */
export const VNET_ATTRIBUTE = `TLS-Client-Cert-${VNET_OID}`;

export function radiusDictionary(): string {
  // A local attribute number in FreeRADIUS's TLS-Client-Cert range; without this entry the extension is skipped.
  return `ATTRIBUTE\t${VNET_ATTRIBUTE}\t3101\toctets\n`;
}

/**
 * One decision line: `accept mac=02-00-00-00-01-01 port=d1 at=1765000000 serial=7a... cn=h1 segment=100`
 * or `reject mac=... port=... at=... cn=... reason=...`: the station, the switch port it asked on
 * (NAS-Port-Id, which hostapd sends) and when (the request's time, seconds since the epoch).
 */
export function radiusConfig(o: RadiusOptions): string {
  const p = o.paths;
  return `# Written by outrig port-controller; changes are overwritten.
prefix = /usr
exec_prefix = /usr
libdir = /usr/lib/freeradius
dictdir = /usr/share/freeradius
confdir = ${p.dir}
raddbdir = ${p.dir}
run_dir = ${p.dir}/run
logdir = ${p.dir}/log
pidfile = ${p.dir}/run/radiusd.pid
max_request_time = 30
cleanup_delay = 5
max_requests = 4096
hostname_lookups = no

log {
\tdestination = files
\tfile = ${p.dir}/log/radius.log
\tauth = yes
\tauth_badpass = no
\tauth_goodpass = no
}

security {
\tallow_core_dumps = no
\tmax_attributes = 200
\treject_delay = 0
\tstatus_server = no
}

client switch {
\tipaddr = 127.0.0.1
\tsecret = ${o.secret}
\trequire_message_authenticator = yes
\tshortname = switch
}

thread pool {
\tstart_servers = 2
\tmax_servers = 8
\tmin_spare_servers = 1
\tmax_spare_servers = 4
\tmax_requests_per_server = 0
}

modules {
\teap {
\t\tdefault_eap_type = tls
\t\ttimer_expire = 60
\t\tignore_unknown_eap_types = no
\t\tmax_sessions = 4096
\t\ttls-config tls-common {
\t\t\tprivate_key_file = ${p.key}
\t\t\tcertificate_file = ${p.cert}
\t\t\tca_file = ${p.caAndCrl}
\t\t\tcheck_crl = yes
\t\t\tcipher_list = "DEFAULT"
\t\t\tecdh_curve = "prime256v1"
\t\t\ttls_min_version = "1.2"
\t\t\ttls_max_version = "1.2"
\t\t\tcache {
\t\t\t\tenable = no
\t\t\t}
\t\t}
\t\ttls {
\t\t\ttls = tls-common
\t\t}
\t}
\talways reject {
\t\trcode = reject
\t}
\tlinelog outrig_accept {
\t\tfilename = ${p.decisions}
\t\tpermissions = 0600
\t\tformat = "accept mac=%{Calling-Station-Id} port=%{NAS-Port-Id} at=%l serial=%{TLS-Client-Cert-Serial} cn=%{TLS-Client-Cert-Common-Name} segment=%{reply:Tunnel-Private-Group-Id}"
\t}
\tlinelog outrig_reject {
\t\tfilename = ${p.decisions}
\t\tpermissions = 0600
\t\tformat = "reject mac=%{Calling-Station-Id} port=%{NAS-Port-Id} at=%l cn=%{TLS-Client-Cert-Common-Name} reason=%{%{Module-Failure-Message}:-TLS handshake refused (no or unusable client certificate)}"
\t}
}

server outrig {
\tlisten {
\t\ttype = auth
\t\tipaddr = 127.0.0.1
\t\tport = ${o.authPort}
\t}
\tauthorize {
\t\teap {
\t\t\tok = return
\t\t\tupdated = return
\t\t}
\t\t# Anything that is not EAP.
\t\treject
\t}
\tauthenticate {
\t\teap
\t}
\tpost-auth {
\t\t# Only a principal certificate names a network: any other certificate of the CA gets none.
\t\tif ("%{string:${VNET_ATTRIBUTE}}" =~ /vnet-([0-9]+)/) {
\t\t\tupdate reply {
\t\t\t\tTunnel-Type := VLAN
\t\t\t\tTunnel-Medium-Type := IEEE-802
\t\t\t\tTunnel-Private-Group-Id := "%{1}"
\t\t\t}
\t\t\toutrig_accept
\t\t}
\t\telse {
\t\t\tupdate request {
\t\t\t\tModule-Failure-Message := "the certificate names no virtual network"
\t\t\t}
\t\t\treject
\t\t}
\t\tPost-Auth-Type REJECT {
\t\t\toutrig_reject
\t\t\teap
\t\t}
\t}
}
`;
}
