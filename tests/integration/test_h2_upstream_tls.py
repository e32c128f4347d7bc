"""HTTP/2 to TLS upstreams: a cluster with ssl_config and http2_protocol_options offers ALPN
"h2" (then "http/1.1") and speaks HTTP/2 when the server picks it, HTTP/1.1 when it picks
http/1.1; gRPC over TLS to a grpcio server; USE_DOWNSTREAM_PROTOCOL over TLS offers h2 only for
HTTP/2 clients. Real TLS servers: python3-h2 over ssl, grpcio, the TLS test backend."""
import hashlib
import os
import shutil
import ssl
import subprocess
import tempfile

import grpc
import pytest
import requests

from conftest import free_port, http_get, simple_mesh, wait_for
from grpc_service import OPTIONS, Service, stubs
from h2backend import H2Backend
from h2probe import Probe
from test_tls import PKI, TLSBackend


@pytest.fixture(scope="module")
def pki():
    d = tempfile.mkdtemp(prefix="gyrus-h2tls-pki-")
    p = PKI(d)
    p.backend = p.issue("backend", "backend.local", ["DNS:localhost", "IP:127.0.0.1"])
    yield p
    shutil.rmtree(d, ignore_errors=True)


def server_ctx(pki, alpn):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki.backend.cert, pki.backend.key)
    ctx.set_alpn_protocols(alpn)
    return ctx


def tls_h2_mesh(port, backend_port, pki, **cluster):
    return simple_mesh(port, [backend_port], cluster_extra={
        "ssl_config": {"trust_file": pki.ca.cert, "sni": "localhost"}, **cluster})


@pytest.fixture
def backends():
    started = []
    yield started
    for b in started:
        b.stop()


def test_h2_over_tls_when_the_server_picks_h2(gyrus_factory, pki, backends):
    be = H2Backend(ssl=server_ctx(pki, ["h2"]))
    backends.append(be)
    port = free_port()
    g = gyrus_factory(tls_h2_mesh(port, be.port, pki, http2_protocol_options={}), "test")
    p = Probe(port)
    body = os.urandom(300000)  # more than a window: it waits for the handshake, then flows
    sids = [p.request("/x"), p.request("/sink", method="POST", body=body), p.request("/trailers")]
    assert p.wait(lambda: all(p.done(s) for s in sids), 10)
    x, sink, tr = (p.responses[s] for s in sids)
    assert x["headers"][":status"] == "200" and x["data"] == b"ok h2 h2backend\n"
    assert sink["data"] == f"{len(body)} {hashlib.sha256(body).hexdigest()}".encode()
    assert tr["data"] == b"with trailers\n" and tr["trailers"] == {"x-checksum": "abc123"}
    p.close()
    # an HTTP/1.1 client goes over the same HTTP/2 connection
    st, _, b = http_get(f"http://127.0.0.1:{port}/x")
    assert st == 200 and b == b"ok h2 h2backend\n"
    assert be.alpn == ["h2"] and be.protocols == ["h2"]
    assert all(r[":scheme"] == "https" for r in be.requests) and len(be.requests) == 4
    assert g.metric("gyrus_cluster_upstream_cx_total", cluster="backend") == 1


def test_falls_back_to_http11_when_the_server_picks_it(gyrus_factory, pki, backends):
    be = TLSBackend(pki.backend)  # ALPN: http/1.1 only
    backends.append(be)
    port = free_port()
    g = gyrus_factory(tls_h2_mesh(port, be.port, pki, http2_protocol_options={}), "test")
    p = Probe(port)
    body = os.urandom(200000)
    # streams that arrive while the first connection's handshake is under way all start over
    sids = [p.request("/x"), p.request("/sink", method="POST", body=body), p.request("/x")]
    assert p.wait(lambda: all(p.done(s) for s in sids), 10)
    assert [p.responses[s]["headers"][":status"] for s in sids] == ["200"] * 3
    assert p.responses[sids[0]]["data"] == b"ok tls-backend\n"
    assert p.responses[sids[1]]["data"] == f"{len(body)} {hashlib.sha256(body).hexdigest()}".encode()
    opened = be.connections
    assert 1 <= opened <= 3
    # later requests reuse the HTTP/1.1 connections: the host's choice is remembered
    for _ in range(5):
        sid = p.request("/x")
        assert p.wait(lambda: p.done(sid), 5) and p.responses[sid]["data"] == b"ok tls-backend\n"
    p.close()
    assert be.connections == opened
    assert set(be.alpn) == {"http/1.1"} and not be.handshake_errors
    assert len(be.requests) == 8
    assert g.metric("gyrus_cluster_upstream_cx_total", cluster="backend") == opened
    assert g.metric("gyrus_cluster_upstream_rq_retry_total", cluster="backend") == 0  # starting over is no retry


def test_grpc_over_tls(gyrus_factory, pki):
    with open(pki.backend.cert, "rb") as c, open(pki.backend.key, "rb") as k:
        svc = Service(tls=(c.read(), k.read()))
    try:
        port = free_port()
        gyrus_factory(tls_h2_mesh(port, svc.port, pki, http2_protocol_options={}), "test")
        with grpc.insecure_channel(f"127.0.0.1:{port}", options=OPTIONS) as ch:
            st = stubs(ch)
            resp, call = st["unary"].with_call(b"over tls", timeout=10)
            assert resp == b"over tls" and ("x-trailer", "kept") in call.trailing_metadata()
            assert list(st["bidi"](iter([b"a", b"bb"]), timeout=10)) == [b"a", b"bb"]
            with pytest.raises(grpc.RpcError) as e:
                st["unary"](b"fail:nope", timeout=10)
            assert e.value.code() == grpc.StatusCode.NOT_FOUND and e.value.details() == "nope"
    finally:
        svc.stop()


def test_use_downstream_protocol_over_tls(gyrus_factory, pki, backends):
    be = H2Backend(ssl=server_ctx(pki, ["h2", "http/1.1"]))
    backends.append(be)
    port = free_port()
    gyrus_factory(tls_h2_mesh(port, be.port, pki, protocol_selection="USE_DOWNSTREAM_PROTOCOL"), "test")
    st, _, b = http_get(f"http://127.0.0.1:{port}/x")
    assert st == 200 and b == b"ok h1 h2backend\n"  # an HTTP/1.1 client: http/1.1 only was offered
    r = subprocess.run(["curl", "-sS", "--http2-prior-knowledge", f"http://127.0.0.1:{port}/x"],
                       capture_output=True, timeout=10)
    assert r.returncode == 0 and r.stdout == b"ok h2 h2backend\n"
    assert be.alpn == ["http/1.1", "h2"] and be.protocols == ["h1", "h2"]


def test_dark_copies_to_tls_http2_clusters_choose_by_alpn(gyrus_factory, pki, backends, backend_factory):
    """A dark cluster with ssl_config and http2_protocol_options: its copy's connection offers "h2"
    and "http/1.1" by ALPN and the copy goes as the server chooses, an HTTP/2 stream (:scheme
    https, the body in DATA frames) or an HTTP/1.1 request."""
    live = backend_factory("live")
    h2only, h1only = H2Backend("dark-h2", ssl=server_ctx(pki, ["h2"])), H2Backend("dark-h1", ssl=server_ctx(pki, ["http/1.1"]))
    backends += [h2only, h1only]
    port = free_port()
    tls = {"ssl_config": {"trust_file": pki.ca.cert, "sni": "localhost"}, "http2_protocol_options": {}}
    objs = [
        {"kind": "listener", "listener_key": "l", "name": "l", "ip": "127.0.0.1", "port": port, "domain_keys": ["d"]},
        {"kind": "domain", "domain_key": "d", "name": "*", "port": port},
        {"kind": "proxy", "proxy_key": "p", "name": "p", "listener_keys": ["l"]},
        {"kind": "cluster", "cluster_key": "live", "name": "live", "instances": [{"host": "127.0.0.1", "port": live.port}]},
        {"kind": "cluster", "cluster_key": "dh2", "name": "dh2", "instances": [{"host": "127.0.0.1", "port": h2only.port}], **tls},
        {"kind": "cluster", "cluster_key": "dh1", "name": "dh1", "instances": [{"host": "127.0.0.1", "port": h1only.port}], **tls},
        {"kind": "route", "route_key": "r", "domain_key": "d", "route_match": {"path": "/"},
         "rules": [{"constraints": {"light": [{"cluster_key": "live"}],
                                    "dark": [{"cluster_key": "dh2"}, {"cluster_key": "dh1"}]}}]},
    ]
    g = gyrus_factory(objs, "p")
    r = requests.post(f"http://127.0.0.1:{port}/m?q=1", data=b"payload", timeout=10)
    assert r.status_code == 200 and r.headers["x-backend"] == "live"
    wait_for(lambda: len(h2only.requests) == 1 and len(h1only.requests) == 1, 5, what="both copies")
    d2, d1 = h2only.requests[0], h1only.requests[0]
    assert (d2[":method"], d2[":path"], d2[":scheme"], d2["x-gyrus-shadow"]) == ("POST", "/m?q=1", "https", "true")
    assert (d1[":method"], d1[":path"], d1["x-gyrus-shadow"]) == ("POST", "/m?q=1", "true")
    assert h2only.alpn == ["h2"] and h2only.protocols == ["h2"]
    assert h1only.alpn == ["http/1.1"] and h1only.protocols == ["h1"]
    assert h2only.bodies == [(7, hashlib.sha256(b"payload").hexdigest())]
    for c in ("dh2", "dh1"):
        assert g.metric("gyrus_cluster_upstream_rq_shadow_total", cluster=c) == 1
        assert g.metric("gyrus_cluster_upstream_rq_shadow_dropped_total", cluster=c) == 0


def test_grpc_health_checks_over_tls_keep_their_session(gyrus_factory, pki):
    """A gRPC health check to a TLS cluster offers h2 by ALPN and keeps its TLS session between
    checks: every call comes from one client port."""
    from test_health import GrpcHealth
    with open(pki.backend.key, "rb") as k, open(pki.backend.cert, "rb") as c:
        creds = grpc.ssl_server_credentials([(k.read(), c.read())])
    s = GrpcHealth(credentials=creds)
    try:
        hc = {"interval_msec": 100, "timeout_msec": 1000, "unhealthy_threshold": 2, "healthy_threshold": 1,
              "health_checker": {"grpc_health_check": {"service_name": "demo.Echo"}}}
        g = gyrus_factory(tls_h2_mesh(free_port(), s.port, pki, health_checks=[hc]), "test")
        wait_for(lambda: len(s.peers) >= 6, what="6 gRPC checks over TLS")
        assert len(set(s.peers)) == 1, s.peers
        assert s.services[0] == "demo.Echo"
        assert g.metric("gyrus_cluster_health_check_failure_total", cluster="backend") == 0
        assert g.metric("gyrus_cluster_host_healthy", cluster="backend", host=f"127.0.0.1:{s.port}") == 1
    finally:
        s.stop()
