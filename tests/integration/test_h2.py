"""HTTP/2 downstream: prior knowledge, Upgrade: h2c, listener protocols, independent streams,
flow control, GOAWAY on drain, resets in both directions; with curl, nghttp, h2load and h2."""
import hashlib
import os
import signal
import socket
import subprocess
import time

import h2.errors
import pytest

from conftest import free_port, simple_mesh, wait_for
from h2probe import Probe, raw_responses


def curl(*args, timeout=20):
    r = subprocess.run(["curl", "-s", "-S", "--max-time", str(timeout), *args], capture_output=True, timeout=timeout + 5)
    return r.returncode, r.stdout, r.stderr.decode()


def test_prior_knowledge_and_h2c_upgrade_with_curl(gyrus_factory, backend_factory):
    be = backend_factory()
    port = free_port()
    g = gyrus_factory(simple_mesh(port, [be.port]), "test")
    rc, out, err = curl("--http2-prior-knowledge", "-i", f"http://127.0.0.1:{port}/hello")
    assert rc == 0, err
    assert out.startswith(b"HTTP/2 200") and out.endswith(b"ok backend\n") and b"via: 2 gyrus" in out
    rc, out, err = curl("--http2", "-i", f"http://127.0.0.1:{port}/chunked?n=4")
    assert rc == 0, err
    assert b"HTTP/1.1 101 Switching Protocols" in out and b"HTTP/2 200" in out and out.endswith(b"0123")
    # the upstream got an HTTP/1.1 request with the usual headers and no h2c leftovers
    _, _, hdrs = be.requests[-1]
    assert "http2-settings" not in hdrs and "upgrade" not in hdrs and hdrs["host"] == f"127.0.0.1:{port}"
    entries = g.access_entries()
    wait_for(lambda: len(g.access_entries()) == 2, what="access log")
    entries = g.access_entries()
    assert [e["protocol"] for e in entries] == ["HTTP/2", "HTTP/2"]
    assert all(e["status"] == 200 for e in entries)


def test_bodies_both_ways_and_small_windows(gyrus_factory, backend_factory, tmp_path):
    be = backend_factory()
    port = free_port()
    gyrus_factory(simple_mesh(port, [be.port]), "test")
    blob = os.urandom(3 << 20)
    path = tmp_path / "blob"
    path.write_bytes(blob)
    rc, out, err = curl("--http2-prior-knowledge", "--data-binary", f"@{path}", f"http://127.0.0.1:{port}/sink")
    assert rc == 0, err
    assert out.decode() == f"{len(blob)} {hashlib.sha256(blob).hexdigest()}"
    # a 16 KiB window on the client: the proxy waits for WINDOW_UPDATEs, all bytes arrive
    r = subprocess.run(["nghttp", "-w", "14", "-W", "16", "-n", "-s", f"http://127.0.0.1:{port}/source?n=5000000"],
                       capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    r = subprocess.run(["nghttp", "-w", "14", "-W", "16", f"http://127.0.0.1:{port}/source?n=1000000"],
                       capture_output=True, timeout=30)
    assert len(r.stdout) == 1000000


def test_many_streams_on_one_connection_with_h2load(gyrus_factory, backend_factory):
    be = backend_factory()
    port = free_port()
    g = gyrus_factory(simple_mesh(port, [be.port]), "test")
    r = subprocess.run(["h2load", "-n", "2000", "-c", "1", "-m", "100", f"http://127.0.0.1:{port}/x"],
                       capture_output=True, timeout=60, text=True)
    assert "2000 succeeded, 0 failed, 0 errored" in r.stdout, r.stdout
    assert "status codes: 2000 2xx" in r.stdout
    assert g.metric("gyrus_listener_downstream_cx_total", listener="ingress") == 1
    assert g.metric("gyrus_listener_downstream_rq_total", listener="ingress", status_class="2xx") == 2000


def test_slow_stream_does_not_stall_others(gyrus_factory, backend_factory):
    be = backend_factory()
    port = free_port()
    gyrus_factory(simple_mesh(port, [be.port]), "test")
    p = Probe(port)
    slow = p.request("/slow?s=2")
    t0 = time.monotonic()
    fast = [p.request(f"/fast{i}") for i in range(5)]
    assert p.wait(lambda: all(p.done(s) for s in fast), 5)
    assert time.monotonic() - t0 < 1.5
    assert not p.done(slow)
    assert all(p.responses[s]["headers"][":status"] == "200" for s in fast)
    assert p.wait(lambda: p.done(slow), 5) and p.responses[slow]["data"] == b"slow\n"
    p.close()


def test_listener_protocols(gyrus_factory, backend_factory):
    be = backend_factory()
    p1, p2 = free_port(), free_port()
    mesh = simple_mesh(p1, [be.port], listener_extra={"protocol": "http"})
    mesh += [{"kind": "listener", "listener_key": "h2only", "name": "h2only", "ip": "127.0.0.1", "port": p2,
              "protocol": "http2", "domain_keys": ["h2only"]},
             {"kind": "domain", "domain_key": "h2only", "name": "*", "port": p2}]
    mesh[2]["listener_keys"].append("h2only")
    mesh[4]["domain_key"] = "ingress"
    mesh.append(dict(mesh[4], route_key="root2", domain_key="h2only"))
    gyrus_factory(mesh, "test")
    # http: HTTP/1.1 only, the preface is a bad request line
    assert curl(f"http://127.0.0.1:{p1}/a")[1] == b"ok backend\n"
    rc, out, _ = curl("--http2-prior-knowledge", f"http://127.0.0.1:{p1}/a")
    assert rc != 0 or not out.startswith(b"ok")
    rc, out, _ = curl("--http2", "-i", f"http://127.0.0.1:{p1}/a")  # the upgrade is ignored
    assert rc == 0 and out.startswith(b"HTTP/1.1 200")
    # http2: HTTP/2 only
    assert curl("--http2-prior-knowledge", f"http://127.0.0.1:{p2}/a")[1] == b"ok backend\n"
    rc, out, _ = curl("--http1.1", f"http://127.0.0.1:{p2}/a")
    assert rc != 0 and not out.startswith(b"HTTP/1.1 200")


def test_goaway_with_last_stream_on_drain(gyrus_factory, backend_factory):
    be = backend_factory()
    port = free_port()
    g = gyrus_factory(simple_mesh(port, [be.port]), "test")
    p = Probe(port)
    sid = p.request("/slow?s=1")
    time.sleep(0.3)
    g.signal(signal.SIGTERM)
    assert p.wait(lambda: p.goaway_raw() is not None, 5)
    assert p.goaway_raw() == (sid, 0)  # NO_ERROR, the stream in flight is the last one
    assert p.wait(lambda: p.stream_ended_raw(sid), 5)  # ... and it still finishes
    data = b"".join(pl for t, _, s, pl in p.frames if t == 0 and s == sid)
    assert data == b"slow\n" and p.rst_code(sid) is None
    p.wait(lambda: p.closed, 5)
    assert p.closed  # then the connection closes
    p.close()


def _keepalive_h1(port):
    """An HTTP/1.1 keep-alive connection with one answered request on it."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"GET /x HTTP/1.1\r\nhost: localhost\r\n\r\n")
    got = b""
    while b"ok backend\n" not in got:
        b = s.recv(65536)
        assert b, got
        got += b
    return s


@pytest.mark.parametrize("change", ["removed", "changed"])
def test_goaway_when_a_reload_removes_or_changes_the_listener(gyrus_factory, backend_factory, change):
    be = backend_factory()
    be.script = ["gate:30"]  # the first request is answered when the test says so
    port = free_port()
    objs = simple_mesh(port, [be.port])
    g = gyrus_factory(objs, "test")
    p = Probe(port)
    sid = p.request("/held")
    wait_for(lambda: len(be.requests) == 1, what="the request at the backend")
    h1 = _keepalive_h1(port)
    gen = g.generation()
    if change == "removed":  # the listener goes; another one takes over elsewhere
        port2 = free_port()
        new = simple_mesh(port2, [be.port])
        new[0]["listener_key"] = new[2]["listener_keys"][0] = "other"
    else:  # same key and port, other HTTP/2 settings: the connection cannot follow
        port2 = port
        new = simple_mesh(port, [be.port], listener_extra={"http2_protocol_options": {"max_concurrent_streams": 50}})
    g.write_mesh(new)
    wait_for(lambda: g.generation() > gen, what="the reload")
    # GOAWAY NO_ERROR naming the stream in flight comes at once, while the stream is held
    assert p.wait(lambda: p.goaway_raw() is not None, 10)
    assert p.goaway_raw() == (sid, 0) and not p.stream_ended_raw(sid)
    h1.settimeout(10)
    assert h1.recv(100) == b""  # the idle HTTP/1.1 connection is closed
    h1.close()
    be.gate.set()
    assert p.wait(lambda: p.stream_ended_raw(sid), 10)  # the stream finishes...
    data = b"".join(pl for t, _, s, pl in p.frames if t == 0 and s == sid)  # h2 stops decoding after GOAWAY
    assert raw_responses(p)[sid][0][":status"] == "200" and data == b"ok backend\n"
    assert p.rst_code(sid) is None
    p.wait(lambda: p.closed, 5)
    assert p.closed  # ...then the connection closes
    p.close()
    q = Probe(port2)  # new connections get the new listener
    sid = q.request("/x")
    assert q.wait(lambda: q.done(sid), 5) and q.responses[sid]["data"] == b"ok backend\n"
    q.close()


def test_reload_of_routes_keeps_h2_connections(gyrus_factory, backend_factory):
    be, be2 = backend_factory("one"), backend_factory("two")
    port = free_port()
    g = gyrus_factory(simple_mesh(port, [be.port]), "test")
    p = Probe(port)
    sid = p.request("/x")
    assert p.wait(lambda: p.done(sid), 5) and p.responses[sid]["data"] == b"ok one\n"
    gen = g.generation()
    g.write_mesh(simple_mesh(port, [be2.port]))  # the listener is the same: only the cluster moved
    wait_for(lambda: g.generation() > gen, what="the reload")

    def served_by_two():
        s = p.request("/x")
        assert p.wait(lambda: p.done(s), 5)
        return p.responses[s]["data"] == b"ok two\n"
    wait_for(served_by_two, what="new streams on the same connection to use the new config")
    assert p.goaway_raw() is None and not p.closed
    p.close()


def test_client_reset_aborts_the_upstream_request(gyrus_factory, backend_factory):
    be = backend_factory()
    port = free_port()
    g = gyrus_factory(simple_mesh(port, [be.port]), "test")
    p = Probe(port)
    sid = p.request("/hang?s=3")
    wait_for(lambda: len(be.requests) == 1, what="request upstream")
    p.conn.reset_stream(sid, h2.errors.ErrorCodes.CANCEL)
    p.flush()
    wait_for(lambda: g.metric("gyrus_cluster_upstream_cx_active", cluster="backend") == 0, what="upstream closed")
    other = p.request("/after")  # the connection goes on
    assert p.wait(lambda: p.done(other), 5) and p.responses[other]["data"] == b"ok backend\n"
    p.close()
    wait_for(lambda: any(e["response_flags"] == "DC" for e in g.access_entries()), what="DC in the log")


def test_upstream_reset_after_headers_resets_the_stream(gyrus_factory, backend_factory):
    be = backend_factory()
    port = free_port()
    gyrus_factory(simple_mesh(port, [be.port]), "test")
    p = Probe(port)
    sid = p.request("/eof?body=partial")  # close-delimited: the end is the upstream closing
    assert p.wait(lambda: p.done(sid), 5)
    assert p.responses[sid]["data"] == b"partial" and p.responses[sid]["ended"]
    sid = p.request("/reset")  # before any byte: a local answer
    assert p.wait(lambda: p.done(sid), 5) and p.responses[sid]["headers"][":status"] == "503"
    p.close()
