"""Bodies stream through with bounded memory: 1 GiB up and 1 GiB down while sampling the proxy's RSS."""
import hashlib
import socket
import threading
import time

from conftest import free_port, simple_mesh

GIB = 1 << 30


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class RssSampler:
    def __init__(self, pid):
        self.pid, self.peak, self.stop = pid, 0, threading.Event()
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        while not self.stop.is_set():
            self.peak = max(self.peak, rss_kib(self.pid))
            time.sleep(0.05)

    def finish(self):
        self.stop.set()
        self.t.join()
        return self.peak


def read_response(s):
    data = b""
    while b"\r\n\r\n" not in data:
        data += s.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int([h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length:")][0].split(b":")[1])
    while len(body) < length:
        body += s.recv(65536)
    return head, body


def test_1gib_upload_chunked_streams_with_bounded_memory(gyrus_factory, backend_factory):
    be = backend_factory()
    port = free_port()
    g = gyrus_factory(simple_mesh(port, [be.port]), "test")
    base = rss_kib(g.proc.pid)
    sampler = RssSampler(g.proc.pid)
    block = bytes(range(256)) * 4096  # 1 MiB
    digest = hashlib.sha256()
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        s.sendall(b"POST /sink HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk_head = b"%x\r\n" % len(block)
        for _ in range(GIB // len(block)):
            s.sendall(chunk_head + block + b"\r\n")
            digest.update(block)
        s.sendall(b"0\r\n\r\n")
        head, body = read_response(s)
    peak = sampler.finish()
    assert head.startswith(b"HTTP/1.1 200")
    assert body.decode() == f"{GIB} {digest.hexdigest()}"
    assert peak - base < 32 * 1024, f"RSS grew by {peak - base} KiB while streaming 1 GiB"


def test_1gib_download_streams_with_bounded_memory(gyrus_factory, backend_factory):
    be = backend_factory()
    port = free_port()
    g = gyrus_factory(simple_mesh(port, [be.port]), "test")
    base = rss_kib(g.proc.pid)
    sampler = RssSampler(g.proc.pid)
    got = 0
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        s.sendall(b"GET /source?n=%d HTTP/1.1\r\nHost: x\r\n\r\n" % GIB)
        data = b""
        while b"\r\n\r\n" not in data:
            data += s.recv(65536)
        head, _, rest = data.partition(b"\r\n\r\n")
        got = len(rest)
        while got < GIB:
            b = s.recv(1 << 20)
            assert b, f"connection closed after {got} bytes"
            got += len(b)
            if got < 64 << 20:
                time.sleep(0)  # a slow start: the proxy must apply backpressure, not buffer
    peak = sampler.finish()
    assert got == GIB
    assert peak - base < 32 * 1024, f"RSS grew by {peak - base} KiB while streaming 1 GiB"


def test_slow_reader_backpressure(gyrus_factory, backend_factory):
    """A client that stops reading: the proxy stops reading the upstream instead of buffering."""
    be = backend_factory()
    port = free_port()
    g = gyrus_factory(simple_mesh(port, [be.port]), "test")
    base = rss_kib(g.proc.pid)
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        s.sendall(b"GET /source?n=%d HTTP/1.1\r\nHost: x\r\n\r\n" % (256 << 20))
        time.sleep(2)  # not reading: 256 MiB must not pile up in the proxy
        grown = rss_kib(g.proc.pid) - base
        got = 0
        while got < (256 << 20):
            b = s.recv(1 << 20)
            if not b:
                break
            got += len(b)
    assert grown < 16 * 1024, f"proxy buffered {grown} KiB for a client that was not reading"
