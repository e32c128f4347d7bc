"""HTTP/2 upstreams: multiplexing with more connections past max_concurrent_streams, resets
both ways, refused streams resent, windows given back when clients go away mid-stream, and
protocol_selection USE_DOWNSTREAM_PROTOCOL. (TLS upstreams: test_h2_upstream_tls.py.)"""
import socket
import subprocess
import time

import pytest

from conftest import free_port, http_get, simple_mesh, wait_for
from h2backend import H2Backend
from h2probe import Probe


@pytest.fixture
def h2be():
    b = H2Backend()
    yield b
    b.stop()


def mesh(port, be, **h2opts):
    return simple_mesh(port, [be.port], cluster_extra={"http2_protocol_options": h2opts})


def test_more_connections_past_max_concurrent_streams(gyrus_factory, h2be):
    port = free_port()
    g = gyrus_factory(mesh(port, h2be, max_concurrent_streams=2), "test")
    p = Probe(port)
    sids = [p.request("/slow?s=1") for _ in range(6)]
    assert p.wait(lambda: all(p.done(s) for s in sids), 10)
    assert all(p.responses[s]["data"] == b"slow\n" for s in sids)
    assert h2be.connections == 3
    assert g.metric("gyrus_cluster_upstream_cx_total", cluster="backend") == 3
    p.close()


def test_upstream_reset_after_headers_resets_the_client_stream(gyrus_factory, h2be):
    port = free_port()
    gyrus_factory(mesh(port, h2be), "test")
    p = Probe(port)
    sid = p.request("/reset-after-headers")
    assert p.wait(lambda: p.done(sid), 5)
    r = p.responses[sid]
    assert r["headers"][":status"] == "200" and r["data"] == b"partial" and r["reset"] == 2  # INTERNAL_ERROR
    sid = p.request("/x")  # the upstream connection is still good
    assert p.wait(lambda: p.done(sid), 5) and p.responses[sid]["data"] == b"ok h2 h2backend\n"
    p.close()


def test_refused_stream_is_resent_once(gyrus_factory, h2be):
    port = free_port()
    gyrus_factory(mesh(port, h2be), "test")
    p = Probe(port)
    sid = p.request("/reset?refused=1")
    assert p.wait(lambda: p.done(sid), 5)
    assert p.responses[sid]["headers"][":status"] == "503"
    assert sum(1 for r in h2be.requests if r[":path"] == "/reset?refused=1") == 2
    p.close()


def test_clients_leaving_mid_stream_give_the_window_back(gyrus_factory, h2be):
    port = free_port()
    gyrus_factory(mesh(port, h2be), "test")
    for _ in range(40):  # 40 x ~64 KiB unread would exhaust a 1 MiB connection window
        p = Probe(port)
        sid = p.request("/source?n=400000")
        p.wait(lambda: len(p.responses[sid]["data"]) > 10000, 5)
        p.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        p.close()
    p = Probe(port)
    sid = p.request("/source?n=3000000")
    assert p.wait(lambda: p.done(sid), 20)
    assert len(p.responses[sid]["data"]) == 3000000
    p.close()


def test_use_downstream_protocol(gyrus_factory, h2be):
    """One cluster, one instance that speaks both: HTTP/1.1 clients reach it over HTTP/1.1,
    HTTP/2 clients over h2c (prior knowledge), each on its own upstream connection."""
    port = free_port()
    g = gyrus_factory(simple_mesh(port, [h2be.port], cluster_extra={"protocol_selection": "USE_DOWNSTREAM_PROTOCOL"}),
                      "test")
    for _ in range(2):
        st, _, body = http_get(f"http://127.0.0.1:{port}/x")
        assert st == 200 and body == b"ok h1 h2backend\n"
    p = Probe(port)
    sids = [p.request("/x") for _ in range(3)]
    assert p.wait(lambda: all(p.done(s) for s in sids), 5)
    assert all(p.responses[s]["data"] == b"ok h2 h2backend\n" for s in sids)
    p.close()
    r = subprocess.run(["curl", "-sS", "--http2-prior-knowledge", f"http://127.0.0.1:{port}/x"],
                       capture_output=True, timeout=10)
    assert r.returncode == 0 and r.stdout == b"ok h2 h2backend\n"
    st, _, body = http_get(f"http://127.0.0.1:{port}/x")
    assert st == 200 and body == b"ok h1 h2backend\n"
    # keep-alive HTTP/1.1 connections are pooled apart from the multiplexed HTTP/2 one
    assert sorted(h2be.protocols) == ["h1", "h2"]
    assert [r.get("host", r.get(":authority")) for r in h2be.requests] == [f"127.0.0.1:{port}"] * 2 + ["localhost"] * 3 + \
        [f"127.0.0.1:{port}"] * 2
    assert g.metric("gyrus_cluster_upstream_cx_total", cluster="backend") == 2
