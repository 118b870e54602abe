/**
 * Plays a hostile guest: the test guest booted with outrig.testhook=1 runs a POSTed shell script as
 * root (see src/hypervisor/guest-image/init-script.ts), reached through its forwarded port 80.
 */
import { waitUntil } from './wait.ts';

export const TEST_HOOK_ARG = 'outrig.testhook=1';

export async function inGuest(hostPort: number, script: string, hostAddress = '127.0.0.1'): Promise<string> {
  const res = await fetch(`http://${hostAddress}:${hostPort}/cgi-bin/run`, { method: 'POST', body: script });
  if (!res.ok) throw new Error(`guest hook answered HTTP ${res.status}`);
  return res.text();
}

/** Waits until the guest answers its hook (httpd starts shortly before the ready marker). */
export function hookReady(hostPort: number): Promise<string> {
  return waitUntil('the guest hook to answer', () => inGuest(hostPort, 'echo hook-ok'), 60_000).then((out) => {
    if (out.trim() !== 'hook-ok') throw new Error(`guest hook answered ${JSON.stringify(out)}`);
    return out;
  });
}

/** The guest's virtio disks' serial numbers (Outrig sets the first 20 characters of the volume id). */
export async function guestDiskSerials(hostPort: number): Promise<string[]> {
  const out = await inGuest(hostPort, 'for b in /sys/block/vd*; do [ -e "$b/serial" ] && cat "$b/serial"; done');
  return out.split('\n').filter(Boolean);
}

/**
 * What a root guest can do without asking anyone: power off the PCIe slot its disk sits in (pciehp),
 * which makes QEMU delete the device. Returns the slot it powered off, or '' if none matched.
 */
export async function guestPowersOffDiskSlot(hostPort: number, serial: string): Promise<string> {
  if (!/^[A-Za-z0-9-]+$/.test(serial)) throw new Error(`unexpected disk serial ${serial}`);
  const script = `for b in /sys/block/vd*; do
  [ "$(cat $b/serial 2>/dev/null)" = "${serial}" ] || continue
  d=$(readlink -f $b/device/..); a=\${d##*/}; a=\${a%.*}
  for s in /sys/bus/pci/slots/*; do [ "$(cat $s/address)" = "$a" ] && echo 0 > $s/power && echo "$s"; done
done`;
  return (await inGuest(hostPort, script)).trim();
}
