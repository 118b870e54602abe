import { createSocket } from 'node:dgram';
import { isIP } from 'node:net';

/**
 * The local address the kernel would send from to reach `remote` (a connected UDP socket sends
 * nothing): what a server listening on every address tells a peer to dial back. Undefined when
 * `remote` is not an IP address or no route reaches it.
 */
export function localAddressToward(remote: string): Promise<string | undefined> {
  const family = isIP(remote);
  if (!family) return Promise.resolve(undefined);
  return new Promise((resolve) => {
    const s = createSocket(family === 6 ? 'udp6' : 'udp4');
    const done = (a?: string) => {
      s.close();
      resolve(a);
    };
    s.once('error', () => done());
    s.connect(9, remote, () => {
      try {
        done(s.address().address);
      } catch {
        done();
      }
    });
  });
}

/** True for 0.0.0.0 and ::, the addresses that mean "every local address". */
export function isWildcard(host: string): boolean {
  return host === '0.0.0.0' || host === '::' || host === '[::]';
}

/** True for addresses only this machine reaches (127.0.0.0/8, ::1, localhost). */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host === '[::1]' || /^127\./.test(host);
}
