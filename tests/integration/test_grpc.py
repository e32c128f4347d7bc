"""gRPC through gyrus proxy (HTTP/2 both ways, grpcio client and server): the four call types
with trailers, large messages, deadlines, cancellation, many concurrent calls on one
connection, proxy-made gRPC errors, metrics and the access log."""
import time

import grpc
import pytest

from conftest import free_port, simple_mesh, wait_for
from grpc_service import Service, channel, stubs
from h2probe import Probe


@pytest.fixture
def service():
    s = Service()
    yield s
    s.stop()


def grpc_mesh(port, backend_port, **kw):
    return simple_mesh(port, [backend_port], cluster_extra={"http2_protocol_options": {}}, **kw)


def test_four_call_types_with_trailers(gyrus_factory, service):
    port = free_port()
    g = gyrus_factory(grpc_mesh(port, service.port), "test")
    with channel(port) as ch:
        st = stubs(ch)
        resp, call = st["unary"].with_call(b"hello", timeout=10)
        assert resp == b"hello" and call.code() == grpc.StatusCode.OK
        assert ("x-trailer", "kept") in call.trailing_metadata()
        it = st["server_stream"](b"5", timeout=10)
        assert list(it) == [b"msg-%d" % i for i in range(5)]
        assert ("x-count", "5") in it.trailing_metadata()
        assert st["client_stream"](iter([b"ab", b"cde", b"f"]), timeout=10) == b"6"
        assert list(st["bidi"](iter([b"one", b"two", b"three"]), timeout=10)) == [b"one", b"two", b"three"]
        # a trailers-only error from the server keeps its status and message
        with pytest.raises(grpc.RpcError) as e:
            st["unary"](b"fail:no such thing", timeout=10)
        assert e.value.code() == grpc.StatusCode.NOT_FOUND and e.value.details() == "no such thing"
    assert g.metric("gyrus_route_grpc_total", route="root", grpc_status="0") == 4
    assert g.metric("gyrus_cluster_upstream_grpc_total", cluster="backend", grpc_status="5") == 1
    wait_for(lambda: len(g.access_entries()) == 5, what="access log")
    assert sorted(e["grpc_status"] for e in g.access_entries()) == [0, 0, 0, 0, 5]
    assert all(e["protocol"] == "HTTP/2" for e in g.access_entries())


def test_large_messages_stream(gyrus_factory, service):
    port = free_port()
    gyrus_factory(grpc_mesh(port, service.port), "test")
    big = bytes(range(256)) * (8 << 12)  # 8 MiB
    with channel(port) as ch:
        st = stubs(ch)
        assert st["unary"](big, timeout=30) == big
        out = list(st["bidi"](iter([big, b"small", big]), timeout=30))
        assert out == [big, b"small", big]


def test_hundred_concurrent_calls_on_one_connection(gyrus_factory, service):
    port = free_port()
    g = gyrus_factory(grpc_mesh(port, service.port), "test")
    with channel(port) as ch:
        st = stubs(ch)
        futs = [st["unary"].future(b"sleep:0.5", timeout=20) for _ in range(100)]
        t0 = time.monotonic()
        assert [f.result() for f in futs] == [b"sleep:0.5"] * 100
        assert time.monotonic() - t0 < 10
    assert g.metric("gyrus_listener_downstream_cx_total", listener="ingress") == 1
    assert g.metric("gyrus_route_grpc_total", route="root", grpc_status="0") == 100


def test_deadline_becomes_the_stream_deadline(gyrus_factory, service):
    port = free_port()
    g = gyrus_factory(grpc_mesh(port, service.port), "test")
    with channel(port) as ch:
        with pytest.raises(grpc.RpcError) as e:
            stubs(ch)["unary"](b"sleep:3", timeout=0.5)
        assert e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED



def test_expired_grpc_timeout_is_answered_by_the_proxy(gyrus_factory):
    """An upstream that ignores grpc-timeout: the proxy answers grpc-status 4 itself."""
    from h2backend import H2Backend
    be = H2Backend()
    try:
        port = free_port()
        g = gyrus_factory(grpc_mesh(port, be.port), "test")
        p = Probe(port)
        t0 = time.monotonic()
        sid = p.request("/slow?s=3", method="POST", body=b"\x00\x00\x00\x00\x01x",
                        headers=[("content-type", "application/grpc"), ("te", "trailers"), ("grpc-timeout", "300m")])
        assert p.wait(lambda: p.done(sid), 5)
        r = p.responses[sid]
        assert 0.25 < time.monotonic() - t0 < 2.5
        assert r["headers"][":status"] == "200" and r["headers"]["grpc-status"] == "4" and r["data"] == b""
        p.close()
        wait_for(lambda: any(e["grpc_status"] == 4 and "UT" in e["response_flags"] for e in g.access_entries()),
                 what="the deadline in the access log")
    finally:
        be.stop()


def test_cancellation_reaches_the_server(gyrus_factory, service):
    port = free_port()
    gyrus_factory(grpc_mesh(port, service.port), "test")

    def slow_requests():
        yield b"first"
        time.sleep(10)
        yield b"never"

    with channel(port) as ch:
        fut = stubs(ch)["client_stream"].future(slow_requests(), timeout=20)
        time.sleep(0.5)
        fut.cancel()
        assert service.cancelled.wait(5), "the server did not see the cancellation"


def test_proxy_errors_are_grpc_errors(gyrus_factory, service):
    port = free_port()
    mesh = grpc_mesh(port, service.port)
    mesh[3]["instances"] = []
    gyrus_factory(mesh, "test")
    with channel(port) as ch:
        with pytest.raises(grpc.RpcError) as e:
            stubs(ch)["unary"](b"x", timeout=5)
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE and "no healthy upstream" in e.value.details()
    p = Probe(port)
    sid = p.request("/test.Echo/Unary", method="POST", body=b"\x00\x00\x00\x00\x01x",
                    headers=[("content-type", "application/grpc"), ("te", "trailers")])
    assert p.wait(lambda: p.done(sid), 5)
    h = p.responses[sid]["headers"]
    assert h[":status"] == "200" and h["grpc-status"] == "14" and h["content-type"] == "application/grpc"
    assert p.responses[sid]["data"] == b""  # trailers-only
    p.close()


def test_rate_limit_is_resource_exhausted(gyrus_factory, service):
    port = free_port()
    mesh = grpc_mesh(port, service.port, listener_extra={
        "active_http_filters": ["gyrus.ratelimit"],
        "http_filters": {"gyrus_ratelimit": {"max_tokens": 1, "fill_interval": "1h"}}})
    gyrus_factory(mesh, "test")
    with channel(port) as ch:
        st = stubs(ch)
        assert st["unary"](b"a", timeout=5) == b"a"
        with pytest.raises(grpc.RpcError) as e:
            st["unary"](b"b", timeout=5)
        assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_h1_client_to_h2_upstream_and_back(gyrus_factory):
    from h2backend import H2Backend
    import requests
    be = H2Backend()
    try:
        port = free_port()
        gyrus_factory(simple_mesh(port, [be.port], cluster_extra={"http2_protocol_options": {}}), "test")
        r = requests.get(f"http://127.0.0.1:{port}/hello", timeout=5)
        assert r.status_code == 200 and r.text == "ok h2 h2backend\n" and r.headers["via"] == "1.1 gyrus"
        body = bytes(range(256)) * 20000
        r = requests.post(f"http://127.0.0.1:{port}/sink", data=body, timeout=10)
        import hashlib
        assert r.text == f"{len(body)} {hashlib.sha256(body).hexdigest()}"
        r = requests.get(f"http://127.0.0.1:{port}/source?n=3000000", timeout=10)
        assert len(r.content) == 3000000
        hdrs = be.requests[0]
        assert hdrs[":authority"] == f"127.0.0.1:{port}" and hdrs["x-forwarded-proto"] == "http"
        assert "connection" not in hdrs and "host" not in hdrs
        # several requests share one multiplexed upstream connection
        assert be.connections == 1
    finally:
        be.stop()



def grpc_frames(body):
    """Splits a gRPC(-Web) body into (flag, payload) frames."""
    out = []
    while body:
        flag, n = body[0], int.from_bytes(body[1:5], "big")
        out.append((flag, body[5:5 + n]))
        body = body[5 + n:]
    return out


def test_grpc_web_binary_and_text(gyrus_factory, service):
    import base64
    import requests
    port = free_port()
    g = gyrus_factory(grpc_mesh(port, service.port), "test")
    msg = b"\x00" + (11).to_bytes(4, "big") + b"hello grpcw"
    r = requests.post(f"http://127.0.0.1:{port}/test.Echo/Unary", data=msg, timeout=10,
                      headers={"content-type": "application/grpc-web+proto", "x-grpc-web": "1"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/grpc-web+proto"
    frames = grpc_frames(r.content)
    assert frames[0] == (0, b"hello grpcw")
    assert frames[-1][0] == 0x80
    trailers = dict(line.split(":", 1) for line in frames[-1][1].decode().split("\r\n") if line)
    assert trailers["grpc-status"] == "0" and trailers["x-trailer"] == "kept"
    # -text over HTTP/2, the request split in odd chunks of base64
    p = Probe(port)
    text = base64.b64encode(msg)
    sid = p.request("/test.Echo/Unary", method="POST", body=None, end=False,
                    headers=[("content-type", "application/grpc-web-text"), ("x-grpc-web", "1")])
    for i in range(0, len(text), 7):
        p.conn.send_data(sid, text[i:i + 7], end_stream=i + 7 >= len(text))
        p.flush()
    assert p.wait(lambda: p.done(sid), 10)
    r2 = p.responses[sid]
    assert r2["headers"][":status"] == "200" and r2["headers"]["content-type"] == "application/grpc-web-text+proto"
    frames = grpc_frames(base64.b64decode(r2["data"]))
    assert frames[0] == (0, b"hello grpcw") and frames[-1][0] == 0x80 and b"grpc-status:0" in frames[-1][1]
    p.close()
    # errors stay gRPC-Web: trailers-only, the status in the head
    r = requests.post(f"http://127.0.0.1:{port}/test.Echo/Unary", timeout=10,
                      data=b"\x00" + (8).to_bytes(4, "big") + b"fail:why",
                      headers={"content-type": "application/grpc-web+proto"})
    assert r.status_code == 200 and r.headers.get("grpc-status") == "5" and r.headers.get("grpc-message") == "why"
    assert g.metric("gyrus_route_grpc_total", route="root", grpc_status="0") == 2
