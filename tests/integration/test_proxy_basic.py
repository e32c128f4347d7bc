"""Plain HTTP/1.1 proxying with real clients (curl, python requests) to real servers."""
import contextlib
import re
import socket
import subprocess
import uuid

import requests

from conftest import free_port, raw_request, simple_mesh, status_of, wait_for


def test_curl_through_proxy_to_nginx(gyrus_factory, nginx):
    port = free_port()
    g = gyrus_factory(simple_mesh(port, [nginx.port]), "test")
    out = subprocess.run(["curl", "-sS", "-i", f"http://127.0.0.1:{port}/hello"], capture_output=True, timeout=10)
    assert out.returncode == 0, out.stderr
    head, _, body = out.stdout.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert body == b"hello from nginx\n"
    assert b"via: 1.1 gyrus" in head.lower()
    assert g.metric("gyrus_listener_downstream_rq_total", listener="ingress", status_class="2xx") == 1
    assert g.metric("gyrus_cluster_upstream_rq_total", cluster="backend", status_class="2xx") == 1


def test_forwarding_headers(gyrus_factory, backend_factory):
    be = backend_factory()
    port = free_port()
    gyrus_factory(simple_mesh(port, [be.port]), "test")
    r = requests.get(f"http://127.0.0.1:{port}/headers",
                     headers={"X-Forwarded-For": "10.0.0.1", "X-Forwarded-Proto": "https",
                              "Connection": "keep-alive, X-Secret", "X-Secret": "hop", "Keep-Alive": "timeout=5",
                              "Proxy-Connection": "keep-alive", "TE": "trailers"}, timeout=5)
    assert r.status_code == 200
    seen = dict(line.split(": ", 1) for line in r.text.splitlines())
    assert seen["x-forwarded-for"] == "10.0.0.1, 127.0.0.1"
    assert seen["x-forwarded-proto"] == "http"  # never trust the client's
    # a generated id is a random (version 4, variant 1) UUID, a new one for every request
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", seen["x-request-id"])
    again = dict(line.split(": ", 1) for line in requests.get(f"http://127.0.0.1:{port}/headers", timeout=5)
                 .text.splitlines())
    assert again["x-request-id"] != seen["x-request-id"]
    assert uuid.UUID(again["x-request-id"]).version == 4
    assert seen["via"] == "1.1 gyrus"
    for hop in ("x-secret", "keep-alive", "proxy-connection", "te", "connection"):
        assert hop not in seen, hop


def test_request_id_kept_when_valid_and_replaced_when_not(gyrus_factory, backend_factory):
    be = backend_factory()
    port = free_port()
    gyrus_factory(simple_mesh(port, [be.port]), "test")
    r = requests.get(f"http://127.0.0.1:{port}/headers", headers={"X-Request-Id": "abc-123"}, timeout=5)
    assert "x-request-id: abc-123" in r.text
    r = requests.get(f"http://127.0.0.1:{port}/headers", headers={"X-Request-Id": "bad id\x7f"}, timeout=5)
    assert "x-request-id: bad" not in r.text


def test_no_request_id_is_made_when_generation_is_off(gyrus_factory, backend_factory, tmp_path):
    """generate_request_id: false (Envoy's switch): a request without an id goes upstream without
    one, a client's valid id is still passed on, a bad one is dropped, and the access log shows "-"."""
    be = backend_factory()
    port = free_port()
    log = tmp_path / "access.log"
    gyrus_factory(simple_mesh(port, [be.port], listener_extra={
        "generate_request_id": False,
        "access_loggers": {"http_connection_loggers": {"file_loggers": [
            {"path": str(log), "format": "%PATH% %REQ(X-REQUEST-ID)%"}]}}}), "test")

    def upstream_headers(path, **headers):
        r = requests.get(f"http://127.0.0.1:{port}{path}", headers=headers, timeout=5)
        assert r.status_code == 200
        return dict(line.split(": ", 1) for line in r.text.splitlines())

    none = upstream_headers("/headers")
    assert "x-request-id" not in none
    assert none["x-forwarded-proto"] == "http" and none["via"] == "1.1 gyrus"  # the other headers still go
    assert upstream_headers("/headers", **{"X-Request-Id": "abc-123"})["x-request-id"] == "abc-123"
    assert "x-request-id" not in upstream_headers("/headers", **{"X-Request-Id": "bad id"})
    wait_for(lambda: log.exists() and log.read_text().count("\n") == 3, 5, what="three access log lines")
    assert log.read_text() == "/headers -\n/headers abc-123\n/headers -\n"


def test_requests_session_keepalive_and_upstream_reuse(gyrus_factory, backend_factory):
    be = backend_factory()
    port = free_port()
    g = gyrus_factory(simple_mesh(port, [be.port]), "test")
    with requests.Session() as s:
        for i in range(50):
            r = s.get(f"http://127.0.0.1:{port}/n{i}", timeout=5)
            assert r.status_code == 200 and r.text == "ok backend\n"
    assert be.connections == 1, "upstream keep-alive should carry all 50 requests on one connection"
    assert len(be.requests) == 50
    assert g.metric("gyrus_listener_downstream_cx_total", listener="ingress") == 1
    assert g.metric("gyrus_cluster_upstream_rq_reused_total", cluster="backend") == 49


def test_pipelined_requests_answered_in_order(gyrus_factory, backend_factory):
    be = backend_factory()
    port = free_port()
    gyrus_factory(simple_mesh(port, [be.port]), "test")
    reqs = b"".join(b"GET /status?code=%d HTTP/1.1\r\nHost: x\r\n\r\n" % c for c in (200, 404, 201, 503))
    out = raw_request(port, reqs + b"GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    codes = [int(c) for c in re.findall(rb"HTTP/1.1 (\d{3}) ", out)]
    assert codes == [200, 404, 201, 503, 200], out


def test_http10_client(gyrus_factory, backend_factory):
    be = backend_factory()
    port = free_port()
    gyrus_factory(simple_mesh(port, [be.port]), "test")
    out = raw_request(port, b"GET /chunked?n=3 HTTP/1.0\r\n\r\n")
    head, _, body = out.partition(b"\r\n\r\n")
    assert status_of(out) == 200
    assert b"transfer-encoding" not in head.lower(), "no chunked encoding towards an HTTP/1.0 client"
    assert body == b"012"
    # HTTP/1.0 keep-alive when asked for and the length is known
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        for _ in range(2):
            s.sendall(b"GET /x HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            data = b""
            while not data.endswith(b"ok backend\n"):
                data += s.recv(4096)
            assert b"connection: keep-alive" in data.lower()


def test_chunked_request_and_response(gyrus_factory, backend_factory):
    be = backend_factory()
    port = free_port()
    gyrus_factory(simple_mesh(port, [be.port]), "test")
    body = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nx-trailer: 1\r\n\r\n"
    out = raw_request(port, b"POST /sink HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                            b"Connection: close\r\n\r\n" + body)
    assert status_of(out) == 200
    assert out.split(b"\r\n\r\n", 1)[1].startswith(b"11 ")
    out = raw_request(port, b"GET /eof?body=streamed HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head, _, body = out.partition(b"\r\n\r\n")
    assert b"transfer-encoding: chunked" in head.lower()  # close-delimited upstream → chunked to a 1.1 client
    assert body == b"8\r\nstreamed\r\n0\r\n\r\n"


def test_head_and_no_body_statuses(gyrus_factory, backend_factory):
    be = backend_factory()
    port = free_port()
    gyrus_factory(simple_mesh(port, [be.port]), "test")
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"HEAD /x HTTP/1.1\r\nHost: x\r\n\r\nGET /status?code=204 HTTP/1.1\r\nHost: x\r\n\r\n"
                  b"GET /status?code=304 HTTP/1.1\r\nHost: x\r\n\r\nGET /y HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while data.count(b"HTTP/1.1 ") < 4 or not data.endswith(b"ok backend\n"):
            chunk = s.recv(65536)
            assert chunk, data
            data += chunk
    responses = data.split(b"HTTP/1.1 ")[1:]
    assert [r[:3] for r in responses] == [b"200", b"204", b"304", b"200"]
    assert responses[0].endswith(b"\r\n\r\n"), "HEAD response has no body"


def test_expect_100_continue(gyrus_factory, backend_factory):
    be = backend_factory()
    port = free_port()
    gyrus_factory(simple_mesh(port, [be.port]), "test")
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"POST /sink HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        first = s.recv(4096)
        assert first.startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        s.sendall(b"hello")
        data = first[25:]
        while b"\r\n\r\n" not in data or not data.rstrip().split(b"\r\n")[-1].startswith(b"5 "):
            data += s.recv(4096)
        assert status_of(data) == 200
    assert "expect" not in be.requests[-1][2]


def test_curl_large_upload_and_download(gyrus_factory, backend_factory, tmp_path):
    be = backend_factory()
    port = free_port()
    gyrus_factory(simple_mesh(port, [be.port]), "test")
    f = tmp_path / "blob"
    f.write_bytes(bytes(range(256)) * 40000)  # 10 MB
    out = subprocess.run(["curl", "-sS", "--data-binary", f"@{f}", f"http://127.0.0.1:{port}/sink"],
                         capture_output=True, timeout=60)
    import hashlib
    assert out.stdout.decode() == f"{10240000} {hashlib.sha256(f.read_bytes()).hexdigest()}"
    out = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{size_download}",
                          f"http://127.0.0.1:{port}/source?n=20000000"], capture_output=True, timeout=60)
    assert out.stdout == b"20000000"


@contextlib.contextmanager
def one_answer_upstream(answer):
    """A raw upstream that reads one request, sends `answer` as it is and closes; yields its port."""
    import threading
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()

    def serve():
        c, _ = srv.accept()
        c.recv(65536)
        c.sendall(answer)
        c.close()
    t = threading.Thread(target=serve)
    t.start()
    try:
        yield srv.getsockname()[1]
    finally:
        t.join(10)
        srv.close()


EARLY_HINTS = (b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\nConnection: keep-alive\r\n\r\n"
               b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\ndone")


def test_informational_responses_forwarded(gyrus_factory):
    """A 103 Early Hints from the upstream reaches an HTTP/1.1 client before the final response,
    its connection-specific fields dropped."""
    port = free_port()
    with one_answer_upstream(EARLY_HINTS) as up:
        gyrus_factory(simple_mesh(port, [up]), "test")
        out = raw_request(port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK"), out
    assert out.endswith(b"\r\n\r\ndone")


def test_informational_responses_forwarded_to_http2_clients(gyrus_factory):
    """The same 103 reaches an HTTP/2 client as a non-final HEADERS frame, its Link field kept,
    its connection-specific fields dropped, before the final 200."""
    from h2probe import Probe
    port = free_port()
    with one_answer_upstream(EARLY_HINTS) as up:
        gyrus_factory(simple_mesh(port, [up]), "test")
        p = Probe(port)
        sid = p.request("/")
        assert p.wait(lambda: p.done(sid), 10)
    r = p.responses[sid]
    assert r.get("informational") == [{":status": "103", "link": "</style.css>; rel=preload"}], r
    assert r["headers"][":status"] == "200" and r["data"] == b"done"
    p.close()


def rss_anon_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("RssAnon:"))


def sanitized(pid):
    with open(f"/proc/{pid}/maps") as f:
        return "libasan" in f.read()


def test_memory_of_a_burst_goes_back(gyrus_factory, nginx):
    """A burst of 1,000 concurrent streams fills the worker's buffer cache; a few seconds after
    it the worker gives what it no longer uses back (gyrus_worker_cached_bytes falls to 0), and,
    in a build without a sanitizer (whose allocator keeps freed memory on purpose), the process's
    own memory falls back near where it was."""
    port = free_port()
    g = gyrus_factory(simple_mesh(port, [nginx.port]), "test")
    assert status_of(raw_request(port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")) == 200
    base = rss_anon_kib(g.proc.pid)
    r = subprocess.run(["h2load", "-n", "20000", "-c", "20", "-m", "50", f"http://127.0.0.1:{port}/"],
                       capture_output=True, text=True, timeout=120)
    assert "20000 succeeded" in r.stdout, r.stdout[-600:]
    peak = rss_anon_kib(g.proc.pid)
    seen = []

    def cached():
        seen.append(g.metric("gyrus_worker_cached_bytes"))
        return seen[-1]
    wait_for(lambda: cached() > 0, timeout=12, what="the burst's buffers cached")
    assert max(seen) > 100 * 16384  # hundreds of 16 KiB buffers were taken at once
    wait_for(lambda: cached() == 0, timeout=20, what=f"the cache emptied after the burst (seen {max(seen)} B)")
    if not sanitized(g.proc.pid):
        assert peak - base > 8 * 1024, (base, peak)
        wait_for(lambda: rss_anon_kib(g.proc.pid) - base < (peak - base) / 3, timeout=10,
                 what=f"memory back after the burst (base {base} KiB, peak {peak} KiB)")
    assert status_of(raw_request(port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")) == 200
