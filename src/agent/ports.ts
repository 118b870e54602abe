import { createServer } from 'node:net';
import type { PortForward } from '../hypervisor/index.ts';

/** Asks the kernel for a free TCP port on `host`. Another process may take it before QEMU binds it; callers retry. */
export function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

function isPortFree(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, host, () => srv.close(() => resolve(true)));
  });
}

/** Host ports for the guest's forwarded ports on `address`: the previous boot's where still free, new ones otherwise. */
export async function assignPorts(address: string, guestPorts: number[], prev: PortForward[]): Promise<PortForward[]> {
  const out: PortForward[] = [];
  for (const g of guestPorts) {
    const old = prev.find((f) => f.guestPort === g && f.hostAddress === address);
    const keep = old && (await isPortFree(address, old.hostPort));
    out.push({ guestPort: g, hostAddress: address, hostPort: keep ? old.hostPort : await freePort(address) });
  }
  return out;
}
