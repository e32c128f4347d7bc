"""Dead, slow, hanging and broken upstreams: the right status, flag and metric, then recovery."""
import socket
import threading
import time

import requests

from backend import Backend
from conftest import DemoService, free_port, raw_request, simple_mesh, status_of, wait_for


def last_entry(g, path):
    wait_for(lambda: any(e["path"] == path for e in g.access_entries()), 5, what=f"access log for {path}")
    return [e for e in g.access_entries() if e["path"] == path][-1]


def test_killed_backend_503_uf_then_recovery(gyrus_factory):
    be = DemoService("one")
    port, be_port = free_port(), be.port
    g = gyrus_factory(simple_mesh(port, [be_port]), "test")
    with requests.Session() as s:
        assert s.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200  # a pooled connection
        be.proc.kill()
        be.stop()
        r = s.get(f"http://127.0.0.1:{port}/dead", timeout=5)
        assert r.status_code == 503
        assert "connection failure" in r.text
        e = last_entry(g, "/dead")
        assert e["response_flags"] == "UF" and e["upstream_host"] == f"127.0.0.1:{be_port}"
        assert g.metric("gyrus_cluster_upstream_cx_connect_fail_total", cluster="backend") >= 1
        revived = DemoService("two", be_port)
        try:
            r = s.get(f"http://127.0.0.1:{port}/echo", timeout=5)
            assert r.status_code == 200 and r.json()["service"] == "two"
        finally:
            revived.stop()


def test_no_healthy_upstream_uh(gyrus_factory):
    port = free_port()
    mesh = simple_mesh(port, [])
    g = gyrus_factory(mesh, "test")
    r = requests.get(f"http://127.0.0.1:{port}/none", timeout=5)
    assert r.status_code == 503 and "no healthy upstream" in r.text
    assert last_entry(g, "/none")["response_flags"] == "UH"


def test_route_timeout_504_ut(gyrus_factory, backend_factory):
    be = backend_factory()
    port = free_port()
    g = gyrus_factory(simple_mesh(port, [be.port], route_extra={"timeout": "500ms"}), "test")
    t0 = time.monotonic()
    r = requests.get(f"http://127.0.0.1:{port}/slow?s=3", timeout=10)
    assert r.status_code == 504 and "timeout" in r.text
    assert 0.4 < time.monotonic() - t0 < 2.5
    assert last_entry(g, "/slow?s=3")["response_flags"] == "UT"
    assert g.metric("gyrus_cluster_upstream_rq_timeout_total", cluster="backend") == 1
    assert requests.get(f"http://127.0.0.1:{port}/fast", timeout=5).status_code == 200


def test_connect_timeout(gyrus_factory):
    # A listener whose accept queue is full drops SYNs, so connects hang until our timeout.
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen(0)
    fillers = []
    for _ in range(4):
        c = socket.socket()
        c.setblocking(False)
        c.connect_ex(blocker.getsockname())
        fillers.append(c)
    time.sleep(0.2)
    port = free_port()
    g = gyrus_factory(simple_mesh(port, [blocker.getsockname()[1]], cluster_extra={"connect_timeout": "300ms"}),
                      "test")
    try:
        t0 = time.monotonic()
        r = requests.get(f"http://127.0.0.1:{port}/ct", timeout=10)
        assert r.status_code == 503 and "connection timeout" in r.text
        assert time.monotonic() - t0 < 3
        assert last_entry(g, "/ct")["response_flags"] == "UF"
        assert g.metric("gyrus_cluster_upstream_cx_connect_timeout_total", cluster="backend") == 1
    finally:
        for c in fillers:
            c.close()
        blocker.close()


def test_upstream_closes_before_response_uc(gyrus_factory, backend_factory):
    be = backend_factory()
    port = free_port()
    g = gyrus_factory(simple_mesh(port, [be.port]), "test")
    for path in ("/close", "/reset"):
        r = requests.get(f"http://127.0.0.1:{port}{path}", timeout=5)
        assert r.status_code == 503, path
        assert last_entry(g, path)["response_flags"] == "UC"
    assert requests.get(f"http://127.0.0.1:{port}/ok", timeout=5).status_code == 200


def test_invalid_upstream_response_502(gyrus_factory, backend_factory):
    be = backend_factory()
    port = free_port()
    g = gyrus_factory(simple_mesh(port, [be.port]), "test")
    r = requests.get(f"http://127.0.0.1:{port}/garbage", timeout=5)
    assert r.status_code == 502
    assert last_entry(g, "/garbage")["response_flags"] == "UPE"
    assert g.metric("gyrus_cluster_upstream_cx_protocol_error_total", cluster="backend") == 1


def test_upstream_dies_mid_body_resets_client(gyrus_factory):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()

    def serve():
        c, _ = srv.accept()
        c.recv(65536)
        c.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n" + b"x" * 100)
        time.sleep(0.2)
        c.close()
    t = threading.Thread(target=serve)
    t.start()
    port = free_port()
    g = gyrus_factory(simple_mesh(port, [srv.getsockname()[1]]), "test")
    out = raw_request(port, b"GET /partial HTTP/1.1\r\nHost: x\r\n\r\n", timeout=5)
    assert status_of(out) == 200
    assert len(out.split(b"\r\n\r\n", 1)[1]) == 100  # truncated, and the connection closed
    assert last_entry(g, "/partial")["response_flags"] == "UC"
    t.join()
    srv.close()


def test_stale_pooled_connection_is_retried_transparently(gyrus_factory, backend_factory):
    # The backend closes idle keep-alive connections right after each response.
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    served = []

    def serve():
        for _ in range(2):
            c, _ = srv.accept()
            req = c.recv(65536)
            served.append(req.split(b" ")[1])
            c.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            time.sleep(0.2)
            c.close()  # no "connection: close": the proxy pooled it
    t = threading.Thread(target=serve)
    t.start()
    port = free_port()
    gyrus_factory(simple_mesh(port, [srv.getsockname()[1]]), "test")
    assert requests.get(f"http://127.0.0.1:{port}/1", timeout=5).text == "ok"
    time.sleep(0.5)
    assert requests.get(f"http://127.0.0.1:{port}/2", timeout=5).text == "ok"
    t.join()
    srv.close()
    assert served == [b"/1", b"/2"]
