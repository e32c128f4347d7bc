"""WebSocket through gyrus proxy: HTTP/1.1 Upgrade tunnels (python3-websockets echo), extended
CONNECT over HTTP/2 (RFC 8441) to an HTTP/1.1 WebSocket upstream, and the idle timeout."""
import asyncio
import os
import threading
import time

import pytest
import websockets

from conftest import free_port, raw_request, simple_mesh, status_of, wait_for
from h2probe import Probe


class WsEcho:
    def __init__(self):
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()

        async def echo(ws, path=None):
            try:
                async for m in ws:
                    await ws.send(m)
            except websockets.ConnectionClosed:
                pass

        def run():
            asyncio.set_event_loop(self.loop)
            self.server = self.loop.run_until_complete(websockets.serve(echo, "127.0.0.1", 0, max_size=None))
            self.port = self.server.sockets[0].getsockname()[1]
            ready.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        ready.wait(10)

    def stop(self):
        async def close():
            self.server.close()
            await self.server.wait_closed()
        asyncio.run_coroutine_threadsafe(close(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def ws_echo():
    e = WsEcho()
    yield e
    e.stop()


def test_websocket_echo_over_http11(gyrus_factory, ws_echo):
    port = free_port()
    g = gyrus_factory(simple_mesh(port, [ws_echo.port]), "test")
    big = os.urandom(300000)

    async def run():
        async with websockets.connect(f"ws://127.0.0.1:{port}/chat", max_size=None) as ws:
            for i in range(20):
                await ws.send(f"hello {i}")
                assert await ws.recv() == f"hello {i}"
            await ws.send(big)
            assert await ws.recv() == big
    asyncio.run(run())
    wait_for(lambda: len(g.access_entries()) == 1, what="access log")
    e = g.access_entries()[0]
    assert e["status"] == 101 and e["bytes_received"] > 300000 and e["bytes_sent"] > 300000


def test_idle_timeout_closes_tunnels(gyrus_factory, ws_echo):
    port = free_port()
    gyrus_factory(simple_mesh(port, [ws_echo.port], route_extra={"idle_timeout": "1s"}), "test")

    async def run():
        async with websockets.connect(f"ws://127.0.0.1:{port}/chat", ping_interval=None) as ws:
            await ws.send("x")
            assert await ws.recv() == "x"
            t0 = time.monotonic()
            with pytest.raises(websockets.ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 10)
            return time.monotonic() - t0
    assert 0.8 < asyncio.run(run()) < 5


def ws_frame(payload, opcode=1):
    """A masked client frame (RFC 6455 §5.2), payload < 126 bytes."""
    mask = b"\x01\x02\x03\x04"
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def open_extended_connect(port):
    """An HTTP/2 client's WebSocket (RFC 8441 CONNECT) through gyrus, answered 200 without the
    HTTP/1.1 handshake fields; returns the probe and the stream id."""
    p = Probe(port, validate=False)
    assert p.wait(lambda: p.conn.remote_settings.get(8) == 1, 5)  # SETTINGS_ENABLE_CONNECT_PROTOCOL
    sid = p.conn.get_next_available_stream_id()
    p.conn.send_headers(sid, [(":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "http"),
                              (":path", "/chat"), (":authority", "localhost"), ("sec-websocket-version", "13")])
    p.flush()
    p.responses[sid] = {"headers": None, "data": b"", "trailers": None, "ended": False, "reset": None}
    assert p.wait(lambda: p.responses[sid]["headers"] is not None, 5)
    assert p.responses[sid]["headers"][":status"] == "200"
    assert "sec-websocket-accept" not in p.responses[sid]["headers"]
    return p, sid


def test_extended_connect_over_h2(gyrus_factory, ws_echo):
    port = free_port()
    gyrus_factory(simple_mesh(port, [ws_echo.port], listener_extra={"http2_protocol_options": {"allow_connect": True}}),
                  "test")
    p, sid = open_extended_connect(port)
    p.conn.send_data(sid, ws_frame(b"over h2"))
    p.flush()
    assert p.wait(lambda: p.responses[sid]["data"] == b"\x81\x07over h2", 5), p.responses[sid]
    p.conn.send_data(sid, ws_frame(b"", opcode=8), end_stream=True)  # close
    p.flush()
    assert p.wait(lambda: p.done(sid), 5)
    p.close()


def test_extended_connect_needs_allow_connect(gyrus_factory, ws_echo):
    port = free_port()
    gyrus_factory(simple_mesh(port, [ws_echo.port]), "test")
    p = Probe(port, validate=False)
    p.pump(0.5)
    assert p.conn.remote_settings.get(8) in (None, 0)
    p.close()


@pytest.fixture
def ws_h2():
    from h2backend import H2Backend
    b = H2Backend(connect_protocol=True)
    yield b
    b.stop()


def h2_upstream(port, be, **listener):
    return simple_mesh(port, [be.port], cluster_extra={"http2_protocol_options": {}},
                       listener_extra=listener or None)


def test_websocket_from_http11_to_an_h2_upstream(gyrus_factory, ws_h2):
    """An HTTP/1.1 Upgrade becomes an extended CONNECT (RFC 8441) to the HTTP/2 upstream; the
    client gets 101 with the Sec-WebSocket-Accept for its key, which the server never saw."""
    port = free_port()
    g = gyrus_factory(h2_upstream(port, ws_h2), "test")
    big = os.urandom(100000)

    async def run():
        async with websockets.connect(f"ws://127.0.0.1:{port}/chat?room=1", max_size=None) as ws:
            for i in range(10):
                await ws.send(f"hello {i}")
                assert await ws.recv() == f"hello {i}"
            await ws.send(big)
            assert await ws.recv() == big
    asyncio.run(run())  # websockets checks the accept value itself
    req = ws_h2.requests[0]
    assert req[":method"] == "CONNECT" and req[":protocol"] == "websocket" and req[":path"] == "/chat?room=1"
    assert "sec-websocket-key" not in req and "upgrade" not in req and "connection" not in req
    assert req["sec-websocket-version"] == "13"
    assert ws_h2.ws_messages[:2] == [b"hello 0", b"hello 1"] and ws_h2.ws_messages[10] == big
    wait_for(lambda: len(g.access_entries()) == 1, what="access log")
    e = g.access_entries()[0]
    assert e["status"] == 101 and e["bytes_received"] > 100000 and e["bytes_sent"] > 100000


def test_extended_connect_from_h2_to_an_h2_upstream(gyrus_factory, ws_h2):
    port = free_port()
    gyrus_factory(h2_upstream(port, ws_h2, http2_protocol_options={"allow_connect": True}), "test")
    p, sid = open_extended_connect(port)
    p.conn.send_data(sid, ws_frame(b"h2 to h2"))
    p.flush()
    assert p.wait(lambda: p.responses[sid]["data"] == b"\x81\x08h2 to h2", 5), p.responses[sid]
    p.conn.send_data(sid, ws_frame(b"", opcode=8), end_stream=True)
    p.flush()
    assert p.wait(lambda: p.done(sid), 5)  # the server answered the close and ended its side
    assert p.responses[sid]["data"].endswith(b"\x88\x00") and p.responses[sid]["reset"] is None
    p.close()


def test_websocket_to_an_h2_upstream_without_extended_connect(gyrus_factory):
    """A server that does not say SETTINGS_ENABLE_CONNECT_PROTOCOL gets no CONNECT: the client
    is told why (502), and ordinary requests on that upstream still work."""
    from h2backend import H2Backend
    be = H2Backend()
    try:
        port = free_port()
        g = gyrus_factory(h2_upstream(port, be), "test")

        async def run():
            with pytest.raises(websockets.InvalidStatusCode) as e:
                async with websockets.connect(f"ws://127.0.0.1:{port}/chat"):
                    pass
            return e.value.status_code
        assert asyncio.run(run()) == 502
        assert not any(r.get(":method") == "CONNECT" for r in be.requests)
        wait_for(lambda: len(g.access_entries()) == 1, what="access log")
        assert g.access_entries()[0]["status"] == 502
        p = Probe(port)
        sid = p.request("/x")
        assert p.wait(lambda: p.done(sid), 5) and p.responses[sid]["data"] == b"ok h2 h2backend\n"
        p.close()
    finally:
        be.stop()


def test_websocket_upgrade_without_a_key_to_an_h2_upstream(gyrus_factory, ws_h2):
    port = free_port()
    gyrus_factory(h2_upstream(port, ws_h2), "test")
    raw = raw_request(port, b"GET /chat HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                            b"Sec-WebSocket-Version: 13\r\n\r\n")
    assert status_of(raw) == 400 and b"Sec-WebSocket-Key" in raw
    assert ws_h2.requests == []
