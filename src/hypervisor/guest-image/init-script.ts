/** The /init of the test guest: a busybox shell script, kept here so it can be read and tested as text. */

export const TEST_GUEST_READY_MARKER = 'OUTRIG-GUEST-READY';

export function testGuestInit(modules: string[]): string {
  return `#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t devtmpfs dev /dev
exec </dev/console >/dev/console 2>&1
mount -t proc proc /proc
mount -t sysfs sys /sys
for m in ${modules.join(' ')}; do
  insmod /lib/modules/$m.ko || echo "outrig-guest: insmod $m failed"
done
arg() { sed -n "s/.*\\b$1=\\([^ ]*\\).*/\\1/p" /proc/cmdline; }
NAME=$(arg outrig.name)
NAME=\${NAME:-outrig-test}
hostname "$NAME"
ip link set lo up
i=0
while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done
ADDR=$(arg outrig.ip)
GW=$(arg outrig.gw)
ip link set eth0 up
ip addr add \${ADDR:-10.0.2.15/24} dev eth0
ip route add default via \${GW:-10.0.2.2}
mkdir -p /www
echo "outrig test guest $NAME" > /www/index.html
httpd -p 80 -h /www
# ACPI power button: the host's graceful stop. Without this handler a stop would wait for its timeout.
for ev in /sys/class/input/event*; do
  if [ "$(cat $ev/device/name 2>/dev/null)" = "Power Button" ]; then
    ( dd if=/dev/input/\${ev##*/} bs=24 count=1 of=/dev/null 2>/dev/null
      echo "outrig-guest: power button pressed, powering off"
      sync; poweroff -f ) &
  fi
done
echo "${TEST_GUEST_READY_MARKER} name=$NAME"
while true; do sleep 3600; done
`;
}
