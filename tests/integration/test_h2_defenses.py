"""HTTP/2 defenses, each driven by a python3-h2 (or raw frame) probe: the proxy answers per
RFC 9113 (stream errors reset the stream, connection errors send GOAWAY) and keeps serving
everyone else."""
import subprocess
import time

import h2.errors

from conftest import free_port, simple_mesh, wait_for
from h2probe import GET_ROOT, Probe, frame, hpack_str, literal, raw_responses

HEADERS, RST_STREAM, SETTINGS, PING, CONTINUATION = 1, 3, 4, 6, 9
END_STREAM, END_HEADERS = 0x1, 0x4
ENHANCE_YOUR_CALM, PROTOCOL_ERROR = 11, 1


def others_still_served(port):
    r = subprocess.run(["curl", "-s", "--http2-prior-knowledge", "--max-time", "5", f"http://127.0.0.1:{port}/ok"],
                       capture_output=True, timeout=10)
    assert r.stdout == b"ok backend\n", r
    r = subprocess.run(["curl", "-s", "--max-time", "5", f"http://127.0.0.1:{port}/ok"], capture_output=True, timeout=10)
    assert r.stdout == b"ok backend\n", r


def start(gyrus_factory, backend_factory, **listener):
    be = backend_factory()
    port = free_port()
    g = gyrus_factory(simple_mesh(port, [be.port], listener_extra=listener or None), "test")
    return be, port, g


def test_rapid_reset_gets_goaway(gyrus_factory, backend_factory):
    be, port, g = start(gyrus_factory, backend_factory)
    p = Probe(port)
    for _ in range(1000):
        sid = p.conn.get_next_available_stream_id()
        p.conn.send_headers(sid, [(":method", "GET"), (":scheme", "http"), (":authority", "x"), (":path", "/hang?s=5")],
                            end_stream=True)
        p.conn.reset_stream(sid, h2.errors.ErrorCodes.CANCEL)
    p.flush()
    assert p.wait(lambda: p.goaway_raw() is not None, 10)
    assert p.goaway_raw()[1] == ENHANCE_YOUR_CALM
    assert p.wait(lambda: p.closed, 10)
    assert len(be.requests) < 400, f"{len(be.requests)} requests reached the upstream"
    others_still_served(port)
    assert g.metric("gyrus_listener_downstream_cx_protocol_error_total", listener="ingress") >= 1


def test_continuation_flood_gets_goaway(gyrus_factory, backend_factory):
    _, port, _ = start(gyrus_factory, backend_factory)
    p = Probe(port)
    p.send_raw(frame(HEADERS, END_STREAM, 1, GET_ROOT))
    for i in range(100):
        p.send_raw(frame(CONTINUATION, 0, 1, literal(f"x-{i}", "v" * 100)))
    assert p.wait(lambda: p.closed, 10)
    ga = p.goaway_raw()
    assert ga is None or ga[1] != 0
    others_still_served(port)


def test_oversized_header_list_is_431_and_the_connection_goes_on(gyrus_factory, backend_factory):
    _, port, _ = start(gyrus_factory, backend_factory)
    p = Probe(port)
    # 40 KiB of distinct headers over the listener's 32 KiB limit
    sid = p.request("/big", headers=[(f"x-h{i}", "v" * 1000) for i in range(40)])
    assert p.wait(lambda: p.done(sid), 5)
    assert p.responses[sid]["headers"][":status"] == "431"
    sid = p.request("/after")
    assert p.wait(lambda: p.done(sid), 5) and p.responses[sid]["data"] == b"ok backend\n"
    p.close()
    others_still_served(port)


def test_hpack_bomb_stops_at_the_limit(gyrus_factory, backend_factory):
    be, port, _ = start(gyrus_factory, backend_factory)
    p = Probe(port)
    # stream 1 puts a 4000-byte field into the dynamic table (index 62) ...
    p.send_raw(frame(HEADERS, END_STREAM | END_HEADERS, 1, GET_ROOT + literal("x-bomb", "a" * 4000, index=True)))
    # ... stream 3 refers to it 4000 times: 16 MB once decoded, from a 4 KB block
    p.send_raw(frame(HEADERS, END_STREAM | END_HEADERS, 3, GET_ROOT + b"\xbe" * 4000))
    p.send_raw(frame(HEADERS, END_STREAM | END_HEADERS, 5, GET_ROOT))
    assert p.wait(lambda: all(p.stream_ended_raw(s) for s in (1, 3, 5)), 10)
    heads = raw_responses(p)
    assert heads[1][0][":status"] == "200" and heads[3][0][":status"] == "431" and heads[5][0][":status"] == "200"
    assert len(be.requests) == 2
    p.close()
    others_still_served(port)


def test_settings_flood_gets_goaway(gyrus_factory, backend_factory):
    _, port, _ = start(gyrus_factory, backend_factory)
    p = Probe(port)
    p.send_raw(frame(SETTINGS, 0, 0) * 5000)
    assert p.wait(lambda: p.closed, 10)
    assert p.goaway_raw() is not None and p.goaway_raw()[1] == ENHANCE_YOUR_CALM
    others_still_served(port)


def test_ping_flood_gets_goaway(gyrus_factory, backend_factory):
    _, port, _ = start(gyrus_factory, backend_factory)
    p = Probe(port)
    p.send_raw(frame(PING, 0, 0, b"12345678") * 5000)
    assert p.wait(lambda: p.closed, 10)
    assert p.goaway_raw() is not None and p.goaway_raw()[1] == ENHANCE_YOUR_CALM
    others_still_served(port)


def test_zero_window_stall_times_out(gyrus_factory, backend_factory):
    _, port, g = start(gyrus_factory, backend_factory, stream_idle_timeout="1s")
    p = Probe(port, settings={4: 0})  # SETTINGS_INITIAL_WINDOW_SIZE = 0: no DATA may be sent to us
    t0 = time.monotonic()
    sid = p.request("/source?n=200000")
    assert p.wait(lambda: p.stream_ended_raw(sid), 10)
    assert 0.8 < time.monotonic() - t0 < 5
    assert p.rst_code(sid) is not None  # reset, not completed
    sid2 = p.request("/x", method="HEAD")  # the connection itself is fine
    assert p.wait(lambda: p.stream_ended_raw(sid2), 5)
    p.close()
    others_still_served(port)
    wait_for(lambda: any("SI" in e["response_flags"] for e in g.access_entries()), what="SI in the access log")


def test_invalid_pseudo_headers_reset_the_stream(gyrus_factory, backend_factory):
    be, port, _ = start(gyrus_factory, backend_factory)
    p = Probe(port)
    no_path = b"\x82\x86" + b"\x01" + hpack_str("localhost")
    unknown = GET_ROOT + literal(":foo", "bar")
    late = b"\x82\x86\x01" + hpack_str("localhost") + literal("a", "b") + b"\x84"
    upper = GET_ROOT + literal("X-Upper", "v")
    for sid, block in ((1, no_path), (3, unknown), (5, late), (7, upper)):
        p.send_raw(frame(HEADERS, END_STREAM | END_HEADERS, sid, block))
    p.send_raw(frame(HEADERS, END_STREAM | END_HEADERS, 9, GET_ROOT))
    assert p.wait(lambda: all(p.stream_ended_raw(s) for s in (1, 3, 5, 7, 9)), 10)
    assert [p.rst_code(s) for s in (1, 3, 5, 7)] == [PROTOCOL_ERROR] * 4
    assert raw_responses(p)[9][0][":status"] == "200" and len(be.requests) == 1
    p.close()
    others_still_served(port)


def test_connection_specific_headers_reset_the_stream(gyrus_factory, backend_factory):
    be, port, _ = start(gyrus_factory, backend_factory)
    p = Probe(port)
    blocks = [GET_ROOT + literal("connection", "keep-alive"), GET_ROOT + literal("transfer-encoding", "chunked"),
              GET_ROOT + literal("te", "gzip"), GET_ROOT + literal("upgrade", "websocket"),
              GET_ROOT + literal("keep-alive", "timeout=5")]
    sids = [1, 3, 5, 7, 9]
    for sid, block in zip(sids, blocks):
        p.send_raw(frame(HEADERS, END_STREAM | END_HEADERS, sid, block))
    p.send_raw(frame(HEADERS, END_STREAM | END_HEADERS, 11, GET_ROOT + literal("te", "trailers")))
    assert p.wait(lambda: all(p.stream_ended_raw(s) for s in sids + [11]), 10)
    assert [p.rst_code(s) for s in sids] == [PROTOCOL_ERROR] * 5
    assert raw_responses(p)[11][0][":status"] == "200" and len(be.requests) == 1
    p.close()
    others_still_served(port)
