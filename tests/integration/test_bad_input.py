"""Every malformed or abusive request gets its status, and the proxy keeps serving everyone else."""
import socket
import time

import pytest
import requests

from conftest import free_port, raw_request, simple_mesh, status_of

H = b"Host: x\r\n"

CASES = [
    # (name, raw request, expected status)
    ("cl_and_te", b"POST /sink HTTP/1.1\r\n" + H + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"0\r\n\r\n", 400),
    ("te_and_cl", b"POST /sink HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"
     b"0\r\n\r\n", 400),
    ("duplicate_cl_same", b"POST /sink HTTP/1.1\r\n" + H + b"Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
     400),
    ("duplicate_cl_differ", b"POST /sink HTTP/1.1\r\n" + H + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
     400),
    ("cl_list", b"POST /sink HTTP/1.1\r\n" + H + b"Content-Length: 5, 5\r\n\r\nhello", 400),
    ("cl_negative", b"POST /sink HTTP/1.1\r\n" + H + b"Content-Length: -1\r\n\r\n", 400),
    ("cl_plus", b"POST /sink HTTP/1.1\r\n" + H + b"Content-Length: +5\r\n\r\nhello", 400),
    ("cl_hex", b"POST /sink HTTP/1.1\r\n" + H + b"Content-Length: 0x5\r\n\r\nhello", 400),
    ("cl_overflow", b"POST /sink HTTP/1.1\r\n" + H + b"Content-Length: 99999999999999999999999\r\n\r\n", 400),
    ("te_gzip_chunked", b"POST /sink HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501),
    ("te_chunked_gzip", b"POST /sink HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n", 400),
    ("te_double_chunked", b"POST /sink HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("te_http10", b"POST /sink HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("bad_chunk_size", b"POST /sink HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
     400),
    ("chunk_size_overflow", b"POST /sink HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
     b"fffffffffffffffffff\r\nx\r\n0\r\n\r\n", 400),
    ("chunk_missing_crlf", b"POST /sink HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n",
     400),
    ("obs_fold", b"GET / HTTP/1.1\r\n" + H + b"X-A: one\r\n two\r\n\r\n", 400),
    ("bare_cr_in_value", b"GET / HTTP/1.1\r\n" + H + b"X-A: a\rb\r\n\r\n", 400),
    ("bare_cr_line_end", b"GET / HTTP/1.1\r" + b"\nHost: x\r\nX-A: b\r\r\n\r\n", 400),
    ("nul_in_value", b"GET / HTTP/1.1\r\n" + H + b"X-A: a\x00b\r\n\r\n", 400),
    ("ctl_in_value", b"GET / HTTP/1.1\r\n" + H + b"X-A: a\x01b\r\n\r\n", 400),
    ("space_before_colon", b"GET / HTTP/1.1\r\n" + H + b"X-A : b\r\n\r\n", 400),
    ("bad_header_name", b"GET / HTTP/1.1\r\n" + H + b"X(A): b\r\n\r\n", 400),
    ("empty_header_name", b"GET / HTTP/1.1\r\n" + H + b": b\r\n\r\n", 400),
    ("no_host", b"GET / HTTP/1.1\r\n\r\n", 400),
    ("two_hosts", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    ("bad_method", b"G(T / HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("space_in_target", b"GET /a b HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("http2_version", b"GET / HTTP/2.0\r\n" + H + b"\r\n", 505),
    ("http12_version", b"GET / HTTP/1.2\r\n" + H + b"\r\n", 505),
    ("garbage_version", b"GET / FOO\r\n" + H + b"\r\n", 400),
    ("long_request_line", b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n" + H + b"\r\n", 414),
    ("too_many_headers", b"GET / HTTP/1.1\r\n" + H + b"".join(b"X-%d: v\r\n" % i for i in range(150)) + b"\r\n", 431),
    ("headers_too_large", b"GET / HTTP/1.1\r\n" + H + b"".join(b"X-%d: %s\r\n" % (i, b"v" * 4000) for i in range(10))
     + b"\r\n", 431),
]


@pytest.fixture
def proxy(gyrus_factory, backend_factory):
    be = backend_factory()
    port = free_port()
    g = gyrus_factory(simple_mesh(port, [be.port]), "test")
    return g, port, be


@pytest.mark.parametrize("name,data,status", CASES, ids=[c[0] for c in CASES])
def test_rejected_with_status(proxy, name, data, status):
    g, port, be = proxy
    before = len(be.requests)
    # A healthy keep-alive client is connected across the attack and must be unaffected.
    with requests.Session() as s:
        assert s.get(f"http://127.0.0.1:{port}/before", timeout=5).status_code == 200
        out = raw_request(port, data)
        assert status_of(out) == status, out[:300]
        assert b"connection: close" in out.lower()
        assert s.get(f"http://127.0.0.1:{port}/after", timeout=5).status_code == 200
    # Nothing of the bad request reached the backend.
    assert [r[1] for r in be.requests[before:]] == ["/before", "/after"]
    entries = [e for e in g.access_entries() if e["status"] == status]
    assert entries and "DPE" in entries[-1]["response_flags"]


def test_smuggling_attempt_does_not_reach_backend_as_second_request(proxy):
    g, port, be = proxy
    smuggled = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
    data = (b"POST /sink HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
            % (5 + len(smuggled))) + smuggled
    out = raw_request(port, data)
    assert status_of(out) == 400
    assert all(r[1] != "/smuggled" for r in be.requests)


def test_slowloris_header_timeout(gyrus_factory, backend_factory):
    be = backend_factory()
    port = free_port()
    g = gyrus_factory(simple_mesh(port, [be.port], listener_extra={"request_headers_timeout": "1s"}), "test")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        t0 = time.monotonic()
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        out = b""
        for _ in range(30):  # trickle a header byte every 100 ms: the deadline still holds
            try:
                s.sendall(b"X")
            except OSError:
                break
            time.sleep(0.1)
        s.settimeout(5)
        try:
            while True:
                b = s.recv(4096)
                if not b:
                    break
                out += b
        except (ConnectionResetError, socket.timeout):
            pass
        elapsed = time.monotonic() - t0
    assert status_of(out) == 408
    assert elapsed < 4
    assert requests.get(f"http://127.0.0.1:{port}/ok", timeout=5).status_code == 200
    assert g.metric("gyrus_listener_downstream_rq_timeout_total", listener="ingress") >= 1


def test_idle_connection_without_request_is_closed(gyrus_factory, backend_factory):
    be = backend_factory()
    port = free_port()
    gyrus_factory(simple_mesh(port, [be.port], listener_extra={"request_headers_timeout": "1s"}), "test")
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        t0 = time.monotonic()
        assert s.recv(100) == b""  # closed by the proxy, no response for a silent client
        assert time.monotonic() - t0 < 4


def test_many_bad_clients_do_not_hurt_good_ones(proxy):
    g, port, be = proxy
    for data in (c[1] for c in CASES):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(data)
    for i in range(20):
        assert requests.get(f"http://127.0.0.1:{port}/good{i}", timeout=5).status_code == 200
    assert g.alive()
