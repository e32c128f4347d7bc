#!/usr/bin/python3
"""Hold many idle keep-alive HTTP connections open through a proxy.

Opens --count connections to 127.0.0.1:--port (spread over --sources loopback source
addresses), sends one small GET on each and reads the whole response, so that the proxy's
upstream side has been used too, then keeps them all open and idle.

Talks to its parent as JSON lines on stdout; takes commands on stdin:
  -> {"event": "ready", "requested": N, "open": n, "failed": f, "errors": {...}, "seconds": s}
  <- "check"   -> {"event": "check", "alive": n}   (connections not closed by the peer)
  <- "close"   -> closes every connection, {"event": "closed"}, exit 0
stdin EOF or --hold seconds without a command also close everything and exit.

Standard library only.
"""

import argparse
import errno
import json
import select
import selectors
import socket
import sys
import time

REQUEST = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"
IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


class Conn:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""
        self.sent = False


def new_socket(index, sources):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    if sources > 1:
        # Source address 127.0.0.(1..sources); the kernel picks the port at connect time,
        # so each source address gets its own ephemeral port range.
        sock.setsockopt(socket.SOL_IP, IP_BIND_ADDRESS_NO_PORT, 1)
        sock.bind((f"127.0.0.{1 + index % sources}", 0))
    return sock


def response_complete(buf):
    """(done, status) for a buffered HTTP/1.1 response; status is None until headers end."""
    head_end = buf.find(b"\r\n\r\n")
    if head_end < 0:
        return False, None
    head = buf[:head_end].decode("latin-1").split("\r\n")
    status = int(head[0].split()[1])
    body = buf[head_end + 4:]
    for line in head[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            return len(body) >= int(value), status
        if name == "transfer-encoding" and "chunked" in value.lower():
            return body.endswith(b"0\r\n\r\n"), status
    return True, status  # no body framing: a 204/304-style response


class Opener:
    """Opens connections with at most `concurrency` in flight (to stay under the backlog)."""

    def __init__(self, port, count, sources, concurrency):
        self.port, self.count, self.sources = port, count, sources
        self.concurrency = concurrency
        self.sel = selectors.DefaultSelector()
        self.started = 0
        self.idle = []
        self.errors = {}

    def count_error(self, reason, n=1):
        self.errors[reason] = self.errors.get(reason, 0) + n

    def fail(self, conn, reason):
        self.count_error(reason)
        self.sel.unregister(conn.sock)
        conn.sock.close()

    def start_one(self):
        index = self.started
        self.started += 1
        sock = None
        try:
            sock = new_socket(index, self.sources)
            code = sock.connect_ex(("127.0.0.1", self.port))
        except OSError as e:
            if sock is not None:
                sock.close()
            return self.count_error(errno.errorcode.get(e.errno, str(e)))
        if code not in (0, errno.EINPROGRESS):
            sock.close()
            return self.count_error(errno.errorcode.get(code, str(code)))
        self.sel.register(sock, selectors.EVENT_WRITE, Conn(sock))

    def on_writable(self, conn):
        err = conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            return self.fail(conn, errno.errorcode.get(err, str(err)))
        try:
            conn.sock.send(REQUEST)  # tiny: always fits a fresh socket's buffer
        except OSError as e:
            return self.fail(conn, errno.errorcode.get(e.errno, "send"))
        conn.sent = True
        self.sel.modify(conn.sock, selectors.EVENT_READ, conn)

    def on_readable(self, conn):
        try:
            data = conn.sock.recv(65536)
        except OSError as e:
            return self.fail(conn, errno.errorcode.get(e.errno, "recv"))
        if not data:
            return self.fail(conn, "closed before response")
        conn.buf += data
        done, status = response_complete(conn.buf)
        if status is not None and status != 200:
            return self.fail(conn, f"HTTP {status}")
        if done:
            self.sel.unregister(conn.sock)
            self.idle.append(conn.sock)

    def run(self, deadline):
        while time.monotonic() < deadline:
            in_flight = len(self.sel.get_map())
            while self.started < self.count and in_flight < self.concurrency:
                self.start_one()
                in_flight = len(self.sel.get_map())
            if self.started >= self.count and in_flight == 0:
                return
            for key, _ in self.sel.select(timeout=0.2):
                if key.data.sent:
                    self.on_readable(key.data)
                else:
                    self.on_writable(key.data)
        pending = len(self.sel.get_map())
        if pending:
            self.count_error("timeout", pending)
        if self.started < self.count:
            self.count_error("not started (timeout)", self.count - self.started)


def count_alive(socks):
    """Connections that the peer has not closed (no EOF/reset pending)."""
    alive = 0
    poller = select.poll()
    for s in socks:
        poller.register(s, select.POLLIN)
    readable = {fd for fd, _ in poller.poll(0)}
    for s in socks:
        if s.fileno() not in readable:
            alive += 1
            continue
        try:
            if s.recv(1, socket.MSG_PEEK):
                alive += 1  # unexpected data, but the connection is open
        except OSError:
            pass
    return alive


def wait_for_commands(socks, hold):
    deadline = time.monotonic() + hold
    while time.monotonic() < deadline:
        ready, _, _ = select.select([sys.stdin], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        line = sys.stdin.readline()
        if not line or line.strip() == "close":
            break
        if line.strip() == "check":
            emit({"event": "check", "alive": count_alive(socks)})


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--count", type=int, default=10000)
    ap.add_argument("--sources", type=int, default=4, help="source addresses 127.0.0.1..N")
    ap.add_argument("--concurrency", type=int, default=256, help="connects in flight")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds to open them all")
    ap.add_argument("--hold", type=float, default=120.0, help="max seconds to hold them")
    args = ap.parse_args()

    t0 = time.monotonic()
    opener = Opener(args.port, args.count, args.sources, args.concurrency)
    opener.run(t0 + args.timeout)
    emit({"event": "ready", "requested": args.count, "open": len(opener.idle),
          "failed": args.count - len(opener.idle), "errors": opener.errors,
          "seconds": round(time.monotonic() - t0, 3)})
    wait_for_commands(opener.idle, args.hold)
    for s in opener.idle:
        s.close()
    emit({"event": "closed"})


if __name__ == "__main__":
    main()
