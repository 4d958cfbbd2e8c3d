# Counts one route protocol's IPv4 routes in the network namespace it runs
# in, from rtnetlink's route events (RTMGRP_IPV4_ROUTE), never by polling:
#   python3 route-monitor.py PROTOCOL TARGET MIN_DST
# Only routes in the main table at or above MIN_DST (dotted quad) count, so
# a receiver's own routes (Twill's blackhole) stay out. JSON lines on stdout,
# stamped when the event is read (ms, CLOCK_REALTIME):
#   {"event":"ready"} {"event":"full","at":...} {"event":"empty","at":...}
#   {"event":"lost"}: the socket overflowed (ENOBUFS) and the count is unsure.
# Python, not Node, for one call: SO_RCVBUFFORCE. A receiver writing 100k
# routes in one batch raises events faster than any reader takes them, and
# net.core.rmem_max (4 MiB here, not writable inside a namespace) holds ~5k.
# Run it at real-time priority (chrt): on a loaded machine an ordinary
# process reads its events late.
import json, socket, struct, sys, time

SO_RCVBUFFORCE = 33
RTMGRP_IPV4_ROUTE = 0x40
RTM_NEWROUTE, RTM_DELROUTE = 24, 25
RTA_DST, RTA_TABLE = 1, 15

proto, target = int(sys.argv[1]), int(sys.argv[2])
low = struct.unpack("!I", socket.inet_aton(sys.argv[3]))[0]


def emit(o):
    sys.stdout.write(json.dumps(o) + "\n")
    sys.stdout.flush()


s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
s.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 512 << 20)
s.bind((0, RTMGRP_IPV4_ROUTE))
have = set()
full = False
emit({"event": "ready"})
buf = bytearray(1 << 16)
while True:
    try:
        n = s.recv_into(buf)
    except OSError as e:
        emit({"event": "lost", "code": e.errno})
        continue
    off = 0
    while off + 16 <= n:
        length, kind = struct.unpack_from("=IH", buf, off)
        if length < 16:
            break
        if kind in (RTM_NEWROUTE, RTM_DELROUTE) and buf[off + 16] == socket.AF_INET and buf[off + 21] == proto:
            dst_len, table = buf[off + 17], buf[off + 20]
            dst = 0
            a = off + 28
            while a + 4 <= off + length:
                alen, atype = struct.unpack_from("=HH", buf, a)
                if alen < 4:
                    break
                if atype == RTA_DST and alen == 8:
                    dst = struct.unpack_from("!I", buf, a + 4)[0]
                elif atype == RTA_TABLE and alen == 8:
                    table = struct.unpack_from("=I", buf, a + 4)[0]
                a += (alen + 3) & ~3
            if table == 254 and dst >= low:
                key = dst * 64 + dst_len
                if kind == RTM_NEWROUTE:
                    have.add(key)
                else:
                    have.discard(key)
        off += (length + 3) & ~3
    if not full and len(have) >= target:
        full = True
        emit({"event": "full", "at": time.time() * 1000, "count": len(have)})
    elif full and not have:
        full = False
        emit({"event": "empty", "at": time.time() * 1000})
