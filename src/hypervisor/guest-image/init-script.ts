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
[ -n "$NAME" ] || NAME=$(cat /sys/class/dmi/id/product_serial 2>/dev/null)
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
# NICs on Outrig networks: outrig.nicN=MAC,ADDRESS/PREFIX[,GATEWAY] (N from 1), matched by MAC;
# outrig.nicN=MAC,dhcp asks the network's DHCP server (udhcpc runs this script with the lease).
cat > /bin/outrig-dhcp <<'EOF'
#!/bin/busybox sh
case "$1" in
  bound|renew)
    ip addr flush dev $interface
    ip addr add $ip/$mask dev $interface
    [ -n "$mtu" ] && ip link set $interface mtu $mtu
    r=$router; [ -n "$r" ] || r=none
    echo "$ip/$mask $r $serverid" > /tmp/dhcp.$interface ;;
esac
exit 0
EOF
chmod +x /bin/outrig-dhcp
for n in 1 2 3 4 5 6 7 8 9; do
  NIC=$(arg outrig.nic$n)
  [ -n "$NIC" ] || continue
  MAC=\${NIC%%,*}; REST=\${NIC#*,}; NADDR=\${REST%%,*}; NGW=; [ "$REST" != "$NADDR" ] && NGW=\${REST#*,}
  IF=; i=0
  while [ -z "$IF" ] && [ $i -lt 200 ]; do
    for d in /sys/class/net/*; do [ "$(cat $d/address)" = "$MAC" ] && IF=\${d##*/}; done
    [ -n "$IF" ] || { sleep 0.05; i=$((i+1)); }
  done
  if [ -z "$IF" ]; then echo "outrig-guest: no NIC with MAC $MAC"; continue; fi
  ip link set $IF up
  HOW=static
  if [ "$NADDR" = dhcp ]; then
    HOW=dhcp NADDR=none NGW=
    udhcpc -i $IF -n -q -t 30 -T 1 -s /bin/outrig-dhcp >/dev/null 2>&1 || echo "outrig-guest: no DHCP lease on $IF"
    [ -e /tmp/dhcp.$IF ] && read NADDR NGW SERVER < /tmp/dhcp.$IF && HOW=dhcp-from-$SERVER
    [ "$NGW" = none ] && NGW=
  else
    ip addr add $NADDR dev $IF
  fi
  [ -n "$NETDEV" ] || NETDEV=$IF
  echo "OUTRIG-NIC $IF mac=$MAC address=$NADDR gateway=$NGW mtu=$(cat /sys/class/net/$IF/mtu) config=$HOW"
done
# Reachability probe for tests: outrig.probe=A+B+... makes the guest try each address once a
# second, by ARP (layer 2: does any frame reach it) and ICMP, and print each round's results.
PROBE=$(arg outrig.probe)
if [ -n "$PROBE" ]; then
  ( k=0
    while true; do
      k=$((k+1)); line="OUTRIG-PROBE round=$k"
      for t in $(echo $PROBE | tr '+' ' '); do
        a=down; arping -q -c 1 -w 1 -I \${NETDEV:-eth0} $t && a=up
        p=down; ping -q -c 1 -W 1 $t >/dev/null 2>&1 && p=up
        line="$line $t=arp:$a,icmp:$p"
      done
      echo "$line"; sleep 1
    done ) &
fi
# Network benchmark for bench:network: outrig.netbench=serve puts a file of outrig.netbench_mib
# MiB (default 64) under the web root; outrig.netbench=ADDR (once ADDR answers) fetches it three
# times and pings ADDR 50 times.
NETBENCH=$(arg outrig.netbench)
NETBENCH_MIB=$(arg outrig.netbench_mib)
case "$NETBENCH_MIB" in ''|*[!0-9]*) NETBENCH_MIB=64 ;; esac
mkdir -p /www
if [ "$NETBENCH" = serve ]; then
  dd if=/dev/zero of=/www/big bs=65536 count=$((NETBENCH_MIB * 16)) 2>/dev/null
elif [ -n "$NETBENCH" ]; then
  ( until wget -q -O /dev/null http://$NETBENCH/index.html 2>/dev/null; do sleep 0.2; done
    for k in 1 2 3; do
      t0=$(cut -d' ' -f1 /proc/uptime)
      wget -q -O /dev/null http://$NETBENCH/big
      t1=$(cut -d' ' -f1 /proc/uptime)
      echo "OUTRIG-NETBENCH tcp bytes=$((NETBENCH_MIB * 1048576)) start=$t0 end=$t1"
    done
    echo "OUTRIG-NETBENCH ping $(ping -q -c 50 -i 0.05 $NETBENCH | tail -1)"
    echo "OUTRIG-NETBENCH done" ) &
fi
mkdir -p /www
echo "outrig test guest $NAME" > /www/index.html
# Tests that play a hostile guest: with outrig.testhook=1 on the command line, POST /cgi-bin/run runs
# the request body as a shell script inside the guest (as root) and answers with its output. Anyone
# who reaches the guest's port 80 could use it, so it is off unless a test asks for it.
if [ "$(arg outrig.testhook)" = 1 ]; then
  mkdir -p /www/cgi-bin
  cat > /www/cgi-bin/run <<'HOOK'
#!/bin/busybox sh
printf 'Content-Type: text/plain\\r\\n\\r\\n'
head -c "$CONTENT_LENGTH" > /tmp/hook.sh
sh /tmp/hook.sh 2>&1
HOOK
  chmod +x /www/cgi-bin/run
fi
httpd -p 80 -h /www
# ACPI power button: the host's graceful stop. Without this handler a stop would wait for its timeout.
for ev in /sys/class/input/event*; do
  if [ "$(cat $ev/device/name 2>/dev/null)" = "Power Button" ]; then
    # The device is opened before the guest says it is ready (below): an event that came before
    # dd had opened it would be lost, and a stop would wait for its timeout.
    ( exec 3</dev/input/\${ev##*/}; touch /tmp/button-armed
      dd bs=24 count=1 of=/dev/null <&3 2>/dev/null
      echo "outrig-guest: power button pressed, powering off"
      sync; poweroff -f ) &
  fi
done
# Volumes: each virtio disk without partitions (a boot disk has them) gets an ext2 filesystem on
# first use, is mounted at /mnt/<disk>, and, with outrig.note=TEXT on the command line, gets TEXT in
# note.txt. The console reports every disk that comes and goes (hot-plug included).
NOTE=$(arg outrig.note)
disks() {
  for d in /sys/block/vd*; do
    [ -e "$d" ] || continue
    n=\${d##*/}
    [ -e "$d/\${n}1" ] && continue
    [ -e /tmp/seen.$n ] && continue
    touch /tmp/seen.$n
    mkdir -p /mnt/$n
    mount -t ext4 /dev/$n /mnt/$n 2>/dev/null || { mke2fs -q /dev/$n && mount -t ext4 /dev/$n /mnt/$n; }
    if [ -n "$NOTE" ] && [ ! -e /mnt/$n/note.txt ]; then echo "$NOTE" > /mnt/$n/note.txt; sync; fi
    echo "OUTRIG-VOLUME $n serial=$(cat $d/serial 2>/dev/null) note=$(cat /mnt/$n/note.txt 2>/dev/null)"
  done
  for f in /tmp/seen.*; do
    [ -e "$f" ] || continue
    n=\${f#/tmp/seen.}
    if [ ! -e /sys/block/$n ]; then umount -l /mnt/$n 2>/dev/null; rm -f $f; echo "OUTRIG-VOLUME-GONE $n"; fi
  done
}
disks
i=0
while [ -e /sys/class/input/event0 ] && [ ! -e /tmp/button-armed ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done
echo "${TEST_GUEST_READY_MARKER} name=$NAME"
while true; do sleep 1; disks; done
`;
}
