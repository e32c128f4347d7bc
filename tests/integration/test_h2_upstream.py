"""HTTP/2 upstreams: multiplexing with more connections past max_concurrent_streams, resets
both ways, refused streams resent, windows given back when clients go away mid-stream, and
protocol_selection USE_DOWNSTREAM_PROTOCOL. (TLS upstreams: test_h2_upstream_tls.py.)"""
import re
import socket
import subprocess
import time

import pytest

from conftest import Nginx, free_port, http_get, raw_request, simple_mesh, wait_for
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


def test_informational_responses_from_an_h2_upstream(gyrus_factory, h2be):
    """1xx heads (103 Early Hints) from an HTTP/2 upstream reach HTTP/2 and HTTP/1.1 clients
    before the final response, in order."""
    port = free_port()
    gyrus_factory(mesh(port, h2be), "test")
    p = Probe(port)
    sid = p.request("/early-hints")
    assert p.wait(lambda: p.done(sid), 5)
    r = p.responses[sid]
    assert r.get("informational") == [{":status": "103", "link": "</a.css>; rel=preload"},
                                      {":status": "103", "link": "</b.css>; rel=preload"}], r
    assert r["headers"][":status"] == "200" and r["data"] == b"done"
    p.close()
    out = raw_request(port, b"GET /early-hints HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 103 Early Hints\r\nlink: </a.css>; rel=preload\r\n\r\n"
                          b"HTTP/1.1 103 Early Hints\r\nlink: </b.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK"), out
    assert out.endswith(b"\r\n\r\ndone")


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


def test_refused_stream_is_resent_a_bounded_number_of_times(gyrus_factory, h2be):
    port = free_port()
    gyrus_factory(mesh(port, h2be), "test")
    p = Probe(port)
    sid = p.request("/reset?refused=1")
    assert p.wait(lambda: p.done(sid), 5)
    assert p.responses[sid]["headers"][":status"] == "503"
    # REFUSED_STREAM means "not processed": sent again up to 3 times (GY_MAX_REFUSED_RESENDS), no more
    assert sum(1 for r in h2be.requests if r[":path"] == "/reset?refused=1") == 4
    p.close()


@pytest.mark.parametrize("block_cache", [None, "1048576"], ids=["malloc", "block-cache"])
def test_upstream_ending_connections_by_goaway_loses_no_request(gyrus_factory, block_cache):
    """nginx ends each HTTP/2 connection with GOAWAY after 20 requests (its keepalive_requests;
    the default is 1000). Streams past the GOAWAY's last id were not processed: they go again on
    another connection, and the complete answers that arrive just before the server closes are
    passed on, so every request is answered; connections are replaced, not multiplied.
    Run twice: as the test build runs (nghttp2 on malloc, for the sanitizer) and with the
    workers' block cache on, as release builds run, so that the sanitizer checks the cache under
    this churn of sessions and streams too."""
    be = Nginx(http2=True, keepalive_requests=20)
    try:
        port = free_port()
        env = {"GYRUS_H2_BLOCK_CACHE": block_cache} if block_cache else None
        g = gyrus_factory(simple_mesh(port, [be.port], cluster_extra={"http2_protocol_options": {}}), "test", env=env)
        out = subprocess.run(["h2load", "-n", "4000", "-c", "4", "-m", "25", f"http://127.0.0.1:{port}/"],
                             capture_output=True, text=True, timeout=120).stdout
        m = re.search(r"requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed", out)
        assert m is not None and (m.group(3), m.group(4)) == ("4000", "0"), out
        assert "4000 2xx" in out, out
        cx = g.metric("gyrus_cluster_upstream_cx_total", cluster="backend")
        assert 4000 // 20 <= cx <= 4000 // 20 * 3 // 2, cx  # each carries at most 20; few are cut short
        assert g.metric("gyrus_cluster_upstream_rq_total", cluster="backend", status_class="2xx") == 4000
    finally:
        be.stop()


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


def test_no_request_id_to_an_h2_upstream_when_generation_is_off(gyrus_factory, h2be):
    port = free_port()
    m = mesh(port, h2be)
    m[0]["generate_request_id"] = False
    gyrus_factory(m, "test")
    p = Probe(port)
    plain = p.request("/plain")
    given = p.request("/given", headers=[("x-request-id", "call-7")])
    assert p.wait(lambda: p.done(plain) and p.done(given), 10)
    seen = {r[":path"]: r for r in map(dict, h2be.requests)}
    assert "x-request-id" not in seen["/plain"] and seen["/plain"]["x-forwarded-proto"] == "http"
    assert seen["/given"]["x-request-id"] == "call-7"
    p.close()


UNIQUE = (b"x-request-id", b"traceparent", b"x-b3-traceid", b"set-cookie")


def test_per_message_headers_stay_out_of_the_hpack_tables(gyrus_factory, h2be):
    """Headers whose value is new in every message (request ids, trace ids, session cookies) are
    sent as literals without indexing: they would only evict the entries that repeat from the
    HPACK dynamic table (and cost the encoder a compare against each of them). Checked in the
    decoders of both peers: the upstream's (requests) and the client's (responses)."""
    port = free_port()
    gyrus_factory(mesh(port, h2be), "test")
    p = Probe(port)
    sids = []
    for i in range(6):
        sids.append(p.request("/cookie", headers=[("traceparent", f"00-{i + 1:032x}-{i + 1:016x}-01"),
                                                  ("x-b3-traceid", f"{i + 7:016x}"), ("x-team", "payments")]))
    assert p.wait(lambda: all(p.done(s) for s in sids), 10)
    seen = [dict(r) for r in h2be.requests if r.get(":path") == "/cookie"]
    assert len(seen) == 6 and len({r["x-request-id"] for r in seen}) == 6  # sent, each its own
    assert {r["traceparent"] for r in seen} == {f"00-{i + 1:032x}-{i + 1:016x}-01" for i in range(6)}
    upstream = [name for c in h2be.conns for name, _ in c.conn.decoder.header_table.dynamic_entries]
    assert not set(upstream) & set(UNIQUE), upstream
    assert b"x-team" in upstream and b"x-forwarded-proto" in upstream  # the rest is indexed as before
    cookies = {dict(p.responses[s]["headers"]).get("set-cookie") for s in sids}
    assert len(cookies) == 6
    downstream = [name for name, _ in p.conn.decoder.header_table.dynamic_entries]
    assert b"set-cookie" not in downstream and b"x-served-by" in downstream, downstream
    p.close()
    # An HTTP/1.1 client's names in any case: lower case on the HTTP/2 side (nghttp2 lower-cases
    # what it copies), and a trace id still stays out of the table.
    out = raw_request(port, b"GET /mixed HTTP/1.1\r\nHost: a\r\nTraceParent: 00-" + b"e" * 32 + b"-" + b"f" * 16 +
                      b"-01\r\nX-Team: Payments\r\nX-B3-TRACEID: 0123456789abcdef\r\nConnection: close\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200"), out[:200]
    mixed = [r for r in h2be.requests if r.get(":path") == "/mixed"]
    assert len(mixed) == 1 and mixed[0]["x-team"] == "Payments" and mixed[0]["x-b3-traceid"] == "0123456789abcdef"
    assert all(name == name.lower() for name in mixed[0]), mixed[0]
    upstream = [name for c in h2be.conns for name, _ in c.conn.decoder.header_table.dynamic_entries]
    assert not set(upstream) & set(UNIQUE), upstream
