"""Raw-frame tools for the hostile-guest tests (test/helpers/standin-guest.ts builds the frames).

Python's standard library has the packet and tun sockets Node lacks. Each command runs inside a
network namespace (`ip netns exec NS python3 hostile-guest.py ...`):
  relay TAP GUEST_NS   attach to TAP (a guest's tap the agent made) and hand its frames to a new
                       tap eth0 inside GUEST_NS and back, as QEMU does for a guest
  sniff IFACE          print every frame IFACE receives, as hex, one per line
  send IFACE HEX...    send these raw frames on IFACE, in order
  flood IFACE HEX...   send these frames over and over (every 5 ms) until killed
  udp ADDR PORT HEX    send one UDP datagram through this namespace's own stack (refused: the
                       namespace's firewall stopped it on the way out)
  serve PORT           a host service on [::]:PORT (TCP and UDP, IPv4 too): prints each peer
  connect ADDR PORT    one TCP connection attempt (2 s): prints connected, refused or timeout
"""
import ctypes
import fcntl
import os
import select
import socket
import struct
import sys
import time

TUNSETIFF = 0x400454CA
TUNSETVNETHDRSZ = 0x400454D8
IFF_TAP, IFF_NO_PI, IFF_VNET_HDR = 0x0002, 0x1000, 0x4000
VNET_HDR_LEN = 10  # struct virtio_net_hdr
VIRTIO_NET_HDR_F_NEEDS_CSUM = 1
CLONE_NEWNET = 0x40000000
ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4


def out(*words):
    print(*words, flush=True)


def tap(name, vnet_hdr=False):
    fd = os.open('/dev/net/tun', os.O_RDWR)
    flags = IFF_TAP | IFF_NO_PI | (IFF_VNET_HDR if vnet_hdr else 0)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack('16sH', name.encode(), flags))
    if vnet_hdr:
        # The size is the device's, not the file's: QEMU left its own (12) on this persistent tap.
        fcntl.ioctl(fd, TUNSETVNETHDRSZ, struct.pack('i', VNET_HDR_LEN))
    return fd


def fold(total):
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def complete_checksum(hdr, frame):
    """What a NIC (or QEMU's virtio-net) does for a frame the host left with a partial checksum
    (a veth's offload): the sum from csum_start, stored at csum_start + csum_offset."""
    flags, _gso, _hlen, _gsize, start, offset = struct.unpack('<BBHHHH', hdr)
    if not flags & VIRTIO_NET_HDR_F_NEEDS_CSUM or start + offset + 2 > len(frame):
        return frame
    data = frame[start:] + (b'\0' if (len(frame) - start) % 2 else b'')
    total = fold(sum(struct.unpack('!%dH' % (len(data) // 2), data)))
    csum = (~total) & 0xFFFF
    at = start + offset
    return frame[:at] + struct.pack('!H', csum or 0xFFFF) + frame[at + 2:]


def relay(host_tap, guest_ns):
    # As QEMU opens it: with the virtio-net header, which says when a checksum is still to be done.
    host = tap(host_tap, vnet_hdr=True)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(os.open('/run/netns/' + guest_ns, os.O_RDONLY), CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), 'setns')
    guest = tap('eth0')  # opened after setns: the new tap is made in the guest's namespace
    out('ready')
    while True:
        ready, _, _ = select.select([host, guest], [], [])
        for fd in ready:
            frame = os.read(fd, 65536 + VNET_HDR_LEN)
            if fd == host:
                frame = complete_checksum(frame[:VNET_HDR_LEN], frame[VNET_HDR_LEN:])
            else:
                frame = bytes(VNET_HDR_LEN) + frame
            try:
                os.write(guest if fd == host else host, frame)
            except OSError:
                pass  # the other side is down: a NIC drops the frame


def packet_socket(iface):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.bind((iface, 0))
    return s


def sniff(iface):
    s = packet_socket(iface)
    out('ready')
    while True:
        frame, addr = s.recvfrom(65536)
        if addr[2] != PACKET_OUTGOING:
            out(frame.hex())


def send(iface, frames, forever=False):
    s = packet_socket(iface)
    while True:
        for f in frames:
            s.send(bytes.fromhex(f))
        if not forever:
            return out('sent', len(frames))
        time.sleep(0.005)


def udp(addr, port, payload):
    try:
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(bytes.fromhex(payload), (addr, int(port)))
        out('sent')
    except PermissionError:
        out('refused')  # this namespace's firewall would not let the datagram out


def serve(port):
    t = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    u = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    for s in (t, u):
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(('::', int(port)))
    t.listen(16)
    out('ready')
    while True:
        ready, _, _ = select.select([t, u], [], [])
        if t in ready:
            c, peer = t.accept()
            out('TCP', peer[0])
            c.close()
        if u in ready:
            data, peer = u.recvfrom(65536)
            out('UDP', peer[0], data.hex())


def connect(addr, port):
    info = socket.getaddrinfo(addr, int(port), type=socket.SOCK_STREAM)[0]
    s = socket.socket(info[0], socket.SOCK_STREAM)
    s.settimeout(2)
    try:
        s.connect(info[4])
        out('connected')
    except ConnectionRefusedError:
        out('refused')
    except OSError as e:
        out('timeout' if isinstance(e, socket.timeout) else f'error {e.errno}')


if __name__ == '__main__':
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == 'relay':
        relay(*args)
    elif cmd == 'sniff':
        sniff(*args)
    elif cmd in ('send', 'flood'):
        send(args[0], args[1:], forever=cmd == 'flood')
    elif cmd == 'udp':
        udp(*args)
    elif cmd == 'serve':
        serve(*args)
    elif cmd == 'connect':
        connect(*args)
    else:
        sys.exit(f'unknown command {cmd}')
