"""A scriptable HTTP/1.1 backend for tests: counts connections, sinks and sources large bodies,
and misbehaves on request (close, reset, hang, garbage). Runs in threads of the test process."""
import hashlib
import socket
import socketserver
import struct
import threading
import time


class _Handler(socketserver.BaseRequestHandler):
    def handle(self):
        srv = self.server.owner
        with srv.lock:
            srv.connections += 1
        sock = self.request
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        f = sock.makefile("rb", buffering=65536)
        try:
            while self._one(srv, sock, f):
                pass
        except (ConnectionError, OSError):
            pass

    def _one(self, srv, sock, f):
        line = f.readline(65537)
        if not line:
            return False
        method, target, version = line.decode("latin1").rstrip("\r\n").split(" ", 2)
        headers = {}
        while True:
            h = f.readline(65537).decode("latin1").rstrip("\r\n")
            if not h:
                break
            k, _, v = h.partition(":")
            headers.setdefault(k.strip().lower(), []).append(v.strip())
        with srv.lock:
            srv.requests.append((method, target, {k: v[-1] for k, v in headers.items()}))
            srv.times.append(time.monotonic())
            action = srv.script.pop(0) if srv.script else srv.default_action
        path, _, query = target.partition("?")
        body_len, digest = self._read_body(f, headers)
        with srv.lock:
            srv.bodies.append((body_len, digest))
        keep = headers.get("connection", [""])[-1].lower() != "close" and version == "HTTP/1.1"
        if action is not None:
            kind, _, arg = action.partition(":")
            if kind == "delay":
                time.sleep(float(arg))
            elif kind == "gate":  # answer once the test opens the gate (at most `arg` s)
                srv.gate.wait(float(arg or "30"))
            elif kind == "status":
                return self._send(sock, int(arg), b"scripted\n", extra=f"x-backend: {srv.name}\r\n", keep=keep)
            elif kind == "reset":
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                return False
            elif kind == "close":
                return False
            elif kind == "first":  # the first attempt of each request id fails with 503, later ones wait `arg` s
                rid = headers.get("x-request-id", [""])[-1]
                with srv.lock:
                    first = rid not in srv.seen_ids
                    srv.seen_ids.add(rid)
                if first:
                    return self._send(sock, 503, b"first\n", keep=keep)
                time.sleep(float(arg))
            elif kind == "grpc":
                return self._send(sock, 200, b"", extra=f"content-type: application/grpc\r\ngrpc-status: {arg}\r\n"
                                  f"x-backend: {srv.name}\r\n", keep=keep)
        return self._respond(srv, sock, path, query, body_len, digest, keep)

    @staticmethod
    def _read_body(f, headers):
        h = hashlib.sha256()
        n = 0
        if "transfer-encoding" in headers:
            while True:
                size = int(f.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while f.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                left = size
                while left:
                    chunk = f.read(min(left, 1 << 20))
                    if not chunk:
                        raise ConnectionError("eof in chunk")
                    h.update(chunk)
                    left -= len(chunk)
                n += size
                f.readline()
        elif "content-length" in headers:
            left = int(headers["content-length"][-1])
            while left:
                chunk = f.read(min(left, 1 << 20))
                if not chunk:
                    raise ConnectionError("eof in body")
                h.update(chunk)
                left -= len(chunk)
                n += len(chunk)
        return n, h.hexdigest()

    @staticmethod
    def _send(sock, status, body=b"", extra="", keep=True):
        head = f"HTTP/1.1 {status} X\r\ncontent-length: {len(body)}\r\n{extra}"
        if not keep:
            head += "connection: close\r\n"
        sock.sendall(head.encode() + b"\r\n" + body)
        return keep

    def _respond(self, srv, sock, path, query, body_len, digest, keep):
        params = dict(p.split("=", 1) for p in query.split("&") if "=" in p)
        if path == "/sink":
            return self._send(sock, 200, f"{body_len} {digest}".encode(), keep=keep)
        if path == "/source":
            n = int(params.get("n", "0"))
            block = b"x" * 65536
            sock.sendall(f"HTTP/1.1 200 OK\r\ncontent-length: {n}\r\n\r\n".encode())
            while n > 0:
                k = min(n, len(block))
                sock.sendall(block[:k])
                n -= k
            return keep
        if path == "/chunked":
            n, parts = int(params.get("n", "3")), []
            for i in range(n):
                parts.append(f"{len(str(i)):x}\r\n{i}\r\n".encode())
            sock.sendall(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n" + b"".join(parts) + b"0\r\n\r\n")
            return keep
        if path == "/eof":  # body delimited by closing the connection
            sock.sendall(b"HTTP/1.1 200 OK\r\n\r\n" + params.get("body", "until-close").encode())
            return False
        if path == "/slow":
            time.sleep(float(params.get("s", "1")))
            return self._send(sock, 200, b"slow\n", keep=keep)
        if path == "/status":
            return self._send(sock, int(params.get("code", "200")), b"status\n", keep=keep)
        if path == "/close":  # close without answering
            return False
        if path == "/reset":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return False
        if path == "/hang":
            time.sleep(float(params.get("s", "30")))
            return False
        if path == "/garbage":
            sock.sendall(b"HTTP/1.1 2OO OK\r\n\r\n")
            return False
        if path == "/headers":
            body = "\n".join(f"{k}: {v}" for k, v in srv.requests[-1][2].items()).encode()
            return self._send(sock, 200, body, keep=keep)
        return self._send(sock, 200, f"ok {srv.name}\n".encode(), extra=f"x-backend: {srv.name}\r\n", keep=keep)


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024


class Backend:
    def __init__(self, name="backend", port=0):
        self.name = name
        self.lock = threading.Lock()
        self.connections = 0
        self.requests = []
        self.times = []           # arrival time of each request (time.monotonic)
        self.bodies = []          # (length, sha256) of each request body
        # Misbehaviour: each request takes the next action of `script` ("status:503", "reset",
        # "close", "delay:0.5", "gate:30", "grpc:14", None = normal), then `default_action`.
        self.script = []
        self.gate = threading.Event()
        self.default_action = None
        self.seen_ids = set()
        self.server = _Server(("127.0.0.1", port), _Handler)
        self.server.owner = self
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
