"""A tiny authoritative DNS server over UDP for the dns: discovery tests.

It answers A, AAAA and SRV questions from a table the test edits while it runs, with the TTLs
the test chooses; a name it does not know is NXDOMAIN and a known name without records of the
asked type is NODATA, both with an SOA in the authority section whose MINIMUM is the negative
TTL. Answers that do not fit a 512-byte UDP message are truncated (TC set), and the same port
serves DNS over TCP, where they come whole. Runs in threads of the test process on 127.0.0.1 (or `host`).
"""
import ipaddress
import socket
import struct
import threading

TYPES = {"A": 1, "AAAA": 28, "SRV": 33, "SOA": 6}


def _encode_name(name):
    out = b""
    for label in name.strip(".").split("."):
        if label:
            out += bytes([len(label)]) + label.encode()
    return out + b"\x00"


def _read_name(msg, pos):
    labels = []
    while True:
        n = msg[pos]
        if n == 0:
            return ".".join(labels), pos + 1
        if n & 0xC0:
            raise ValueError("compression in a question")
        labels.append(msg[pos + 1:pos + 1 + n].decode("ascii", "replace"))
        pos += 1 + n


class DnsServer:
    def __init__(self, port=0, negative_ttl=1, zone="gyrus.test", host="127.0.0.1"):
        for attempt in range(50):  # one port number free for both UDP and TCP
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                self.sock.bind((host, port))
                self.tcp.bind((host, self.sock.getsockname()[1]))
                break
            except OSError:
                self.sock.close()
                self.tcp.close()
                if port or attempt == 49:
                    raise
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.tcp.listen(16)
        self.tcp.settimeout(0.2)
        self.negative_ttl = negative_ttl
        self.zone = zone
        self.lock = threading.Lock()
        self.records = {}  # name -> {"A": [(ip, ttl)], "AAAA": [...], "SRV": [(prio, weight, port, target, ttl)]}
        self.queries = []  # (name, type) in arrival order
        self.tcp_queries = 0
        self._stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()
        self.tcp_thread = threading.Thread(target=self._serve_tcp, daemon=True)
        self.tcp_thread.start()

    # ---- the table ----

    def set(self, name, rtype, records):
        """Replaces the records of one type of a name (an empty list leaves the name with no such records)."""
        with self.lock:
            self.records.setdefault(name.lower().strip("."), {})[rtype] = list(records)

    def remove(self, name):
        with self.lock:
            self.records.pop(name.lower().strip("."), None)

    def count(self, name, rtype):
        with self.lock:
            return sum(1 for q in self.queries if q == (name.lower().strip("."), rtype))

    def stop(self):
        self._stop = True
        self.thread.join(timeout=5)
        self.tcp_thread.join(timeout=5)
        self.sock.close()
        self.tcp.close()

    # ---- the protocol ----

    def _serve(self):
        while not self._stop:
            try:
                msg, peer = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                reply = self._answer(msg)
            except (ValueError, IndexError, struct.error):
                continue
            if reply and len(reply) > 512:  # truncated: the question only, TC set
                end = 12 + len(_encode_name(_read_name(msg, 12)[0])) + 4
                head = bytearray(reply[:12])
                head[2] |= 0x02
                head[6:12] = b"\x00" * 6
                reply = bytes(head) + reply[12:end]
            if reply:
                self.sock.sendto(reply, peer)

    def _serve_tcp(self):
        while not self._stop:
            try:
                conn, _ = self.tcp.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self._tcp_conn, args=(conn,), daemon=True).start()

    def _tcp_conn(self, conn):
        with conn:
            conn.settimeout(5)
            f = conn.makefile("rb")
            try:
                while True:
                    n = f.read(2)
                    if len(n) < 2:
                        return
                    msg = f.read(struct.unpack("!H", n)[0])
                    with self.lock:
                        self.tcp_queries += 1
                    reply = self._answer(msg)
                    if reply:
                        # in two writes, so that the reader sees the length before the message
                        conn.sendall(struct.pack("!H", len(reply)))
                        conn.sendall(reply)
            except (OSError, ValueError, IndexError, struct.error):
                return

    def _soa(self):
        rdata = _encode_name("ns." + self.zone) + _encode_name("admin." + self.zone)
        rdata += struct.pack("!IIIII", 1, 3600, 600, 86400, self.negative_ttl)
        return _encode_name(self.zone) + struct.pack("!HHIH", TYPES["SOA"], 1, self.negative_ttl, len(rdata)) + rdata

    def _answer(self, msg):
        qid, flags, qd = struct.unpack("!HHH", msg[:6])
        if flags & 0x8000 or qd != 1:
            return None
        name, pos = _read_name(msg, 12)
        qtype, qclass = struct.unpack("!HH", msg[pos:pos + 4])
        question = msg[12:pos + 4]
        key = name.lower().strip(".")
        tname = next((k for k, v in TYPES.items() if v == qtype), str(qtype))
        with self.lock:
            self.queries.append((key, tname))
            entry = self.records.get(key)
            recs = list(entry.get(tname, [])) if entry is not None else []
        answers = b""
        for r in recs:
            if tname == "A":
                rdata, ttl = ipaddress.IPv4Address(r[0]).packed, r[1]
            elif tname == "AAAA":
                rdata, ttl = ipaddress.IPv6Address(r[0]).packed, r[1]
            else:
                prio, weight, port, target, ttl = r
                rdata = struct.pack("!HHH", prio, weight, port) + _encode_name(target)
            answers += b"\xc0\x0c" + struct.pack("!HHIH", qtype, qclass, ttl, len(rdata)) + rdata
        rcode = 3 if entry is None else 0
        authority = self._soa() if not recs else b""
        head = struct.pack("!HHHHHH", qid, 0x8400 | (flags & 0x0100) | 0x0080 | rcode, 1, len(recs),
                           1 if authority else 0, 0)
        return head + question + answers + authority
