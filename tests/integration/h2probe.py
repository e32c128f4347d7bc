"""A raw HTTP/2 client over python3-h2 for tests and defense probes: frames can be sent as built
by h2 or as raw bytes, and every event received is recorded (GOAWAY, RST_STREAM, responses)."""
import socket
import struct
import time

import h2.config
import h2.connection
import h2.events
import h2.settings

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def frame(ftype, flags, sid, payload=b""):
    """A raw frame: 9-byte header and payload."""
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", sid) + payload


class Probe:
    def __init__(self, port, settings=None, validate=True, timeout=5.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        cfg = h2.config.H2Configuration(client_side=True, header_encoding="utf-8",
                                        validate_outbound_headers=validate, normalize_outbound_headers=validate,
                                        validate_inbound_headers=False)
        self.conn = h2.connection.H2Connection(config=cfg)
        if settings:
            self.conn.local_settings = h2.settings.Settings(client=True, initial_values=settings)
        self.conn.initiate_connection()
        self.flush()
        self.events = []
        self.frames = []      # raw (type, flags, stream id, payload) as received, whatever h2 thinks
        self._raw = b""
        self.closed = False
        self.responses = {}   # stream id -> {"headers": dict, "data": bytes, "trailers": dict, "ended": bool, "reset": code}

    def flush(self):
        data = self.conn.data_to_send()
        if data:
            self.send_raw(data)

    def send_raw(self, data):
        """Sends bytes; a peer that already hung up (a flood cut short) is not an error here."""
        try:
            self.sock.sendall(data)
        except (ConnectionResetError, BrokenPipeError):
            self.closed = True

    def request(self, path, method="GET", headers=(), body=None, end=True, authority="localhost"):
        sid = self.conn.get_next_available_stream_id()
        hdrs = [(":method", method), (":scheme", "http"), (":authority", authority), (":path", path), *headers]
        self.conn.send_headers(sid, hdrs, end_stream=end and body is None)
        if body is not None:
            self.send_body(sid, body, end)
        self.flush()
        self.responses[sid] = {"headers": None, "data": b"", "trailers": None, "ended": False, "reset": None}
        return sid

    def send_body(self, sid, body, end=True):
        while body:
            window = min(self.conn.local_flow_control_window(sid), self.conn.max_outbound_frame_size)
            while window <= 0:
                self.pump(0.5)
                window = min(self.conn.local_flow_control_window(sid), self.conn.max_outbound_frame_size)
            part, body = body[:window], body[window:]
            self.conn.send_data(sid, part, end_stream=end and not body)
            self.flush()

    def pump(self, timeout=1.0):
        """Reads for up to `timeout` seconds (until something arrives); returns False once closed."""
        if self.closed and not self._raw_pending():
            return False
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(1 << 20)
        except socket.timeout:
            return True
        except (ConnectionResetError, BrokenPipeError):
            data = b""
        if not data:
            self.closed = True
            return False
        self._raw += data
        while len(self._raw) >= 9:
            n = int.from_bytes(self._raw[:3], "big")
            if len(self._raw) < 9 + n:
                break
            t, fl, sid = self._raw[3], self._raw[4], int.from_bytes(self._raw[5:9], "big") & 0x7fffffff
            self.frames.append((t, fl, sid, self._raw[9:9 + n]))
            self._raw = self._raw[9 + n:]
        try:
            events = self.conn.receive_data(data)
        except Exception as e:  # noqa: BLE001 - h2 refuses frames after GOAWAY; the raw log keeps them
            self.events.append(e)
            return True
        for ev in events:
            self.events.append(ev)
            r = self.responses.setdefault(getattr(ev, "stream_id", 0), {"headers": None, "data": b"", "trailers": None,
                                                                        "ended": False, "reset": None})
            if isinstance(ev, h2.events.InformationalResponseReceived):
                r.setdefault("informational", []).append(dict(ev.headers))
            elif isinstance(ev, h2.events.ResponseReceived):
                r["headers"] = dict(ev.headers)
            elif isinstance(ev, h2.events.TrailersReceived):
                r["trailers"] = dict(ev.headers)
            elif isinstance(ev, h2.events.DataReceived):
                r["data"] += ev.data
                if ev.flow_controlled_length:
                    self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded):
                r["ended"] = True
            elif isinstance(ev, h2.events.StreamReset):
                r["reset"] = ev.error_code
        self.flush()
        return True

    def wait(self, pred, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred():
                return True
            if not self.pump(min(0.2, max(0.01, deadline - time.monotonic()))) and not pred():
                return pred()
        return pred()

    def done(self, sid):
        r = self.responses.get(sid)
        return r is not None and (r["ended"] or r["reset"] is not None)

    def _raw_pending(self):
        try:
            self.sock.setblocking(False)
            return bool(self.sock.recv(1, socket.MSG_PEEK))
        except (BlockingIOError, OSError):
            return False
        finally:
            self.sock.setblocking(True)

    def stream_ended_raw(self, sid):
        """END_STREAM (DATA or HEADERS) or RST_STREAM seen on the wire for sid."""
        return any(s == sid and ((t in (0, 1) and fl & 1) or t == 3) for t, fl, s, _ in self.frames)

    def rst_code(self, sid):
        for t, _, s, payload in self.frames:
            if t == 3 and s == sid:
                return int.from_bytes(payload[:4], "big")
        return None

    def goaway_raw(self):
        """(last stream id, error code) of the first GOAWAY on the wire, or None."""
        for t, _, _, payload in self.frames:
            if t == 7:
                return int.from_bytes(payload[:4], "big") & 0x7fffffff, int.from_bytes(payload[4:8], "big")
        return None

    def goaway(self):
        for ev in self.events:
            if isinstance(ev, h2.events.ConnectionTerminated):
                return ev
        return None

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def hpack_int(value, prefix_bits, flags=0):
    """An HPACK integer with an N-bit prefix (RFC 7541 §5.1)."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([flags | value])
    out = [flags | limit]
    value -= limit
    while value >= 128:
        out.append((value & 0x7f) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def hpack_str(s):
    if isinstance(s, str):
        s = s.encode()
    return hpack_int(len(s), 7) + s


def literal(name, value, index=False):
    """A literal field with a literal name, without indexing (or with incremental indexing)."""
    return (b"\x40" if index else b"\x00") + hpack_str(name) + hpack_str(value)


# Indexed static-table fields and :authority (static index 1) as a literal without indexing.
GET_ROOT = b"\x82\x86\x84" + b"\x01" + hpack_str("localhost")


def raw_responses(probe):
    """Decodes every HEADERS frame received, in order: {stream id: [header dicts]}."""
    import hpack
    dec = hpack.Decoder()
    out = {}
    for t, fl, sid, payload in probe.frames:
        if t != 1:
            continue
        if fl & 0x08:  # PADDED
            payload = payload[1:len(payload) - payload[0]]
        if fl & 0x20:  # PRIORITY
            payload = payload[5:]
        out.setdefault(sid, []).append({k.decode() if isinstance(k, bytes) else k: v.decode() if isinstance(v, bytes) else v
                                        for k, v in dec.decode(payload)})
    return out
