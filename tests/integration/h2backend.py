"""An HTTP/2 backend for tests (h2c with prior knowledge, or TLS with ALPN when given an
ssl.SSLContext), on python3-h2 and asyncio in a thread: answers like backend.py (/x, /sink,
/source?n=, /slow?s=, /status?code=) plus /trailers and /reset, honours flow control, and records
each request's headers, its connections and the ALPN protocol each TLS connection chose. With
connect_protocol it says SETTINGS_ENABLE_CONNECT_PROTOCOL and echoes WebSocket messages on
extended CONNECT streams (RFC 8441), closing when the client closes.
It also answers HTTP/1.1 on the same port (told from the first bytes, or from ALPN): GET and
content-length bodies, "ok h1 NAME" (for USE_DOWNSTREAM_PROTOCOL tests); `protocols` records
which protocol each connection spoke."""
import asyncio
import os
import hashlib
import threading
import urllib.parse

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.settings

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


class _Conn(asyncio.Protocol):
    def __init__(self, owner):
        self.owner = owner
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding="utf-8"))
        self.streams = {}
        self.waiters = {}
        self.h1 = None        # None until the first bytes (or ALPN) tell
        self.pending = b""

    def connection_made(self, transport):
        self.transport = transport
        self.owner.connections += 1
        self.owner.conns.append(self)
        tls = transport.get_extra_info("ssl_object")
        if tls is not None:
            alpn = tls.selected_alpn_protocol()
            self.owner.alpn.append(alpn)
            if alpn is not None:
                self.start(alpn == "http/1.1")

    def start(self, h1):
        self.h1 = h1
        self.owner.protocols.append("h1" if h1 else "h2")
        if not h1:
            if self.owner.connect_protocol:  # in the first SETTINGS, as clients wait for it
                self.conn.local_settings = h2.settings.Settings(client=False, initial_values={
                    h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 100,
                    h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL: 1})
            self.conn.initiate_connection()
            self.transport.write(self.conn.data_to_send())

    def data_received(self, data):
        if self.h1 is None:
            self.pending += data
            if len(self.pending) < len(PREFACE) and PREFACE.startswith(self.pending):
                return
            self.start(not self.pending.startswith(PREFACE))
            data, self.pending = self.pending, b""
        if self.h1:
            self.h1_received(data)
            return
        try:
            events = self.conn.receive_data(data)
        except Exception:  # noqa: BLE001 - a bad peer: drop it
            self.transport.close()
            return
        for ev in events:
            if isinstance(ev, h2.events.RequestReceived):
                self.streams[ev.stream_id] = {"headers": dict(ev.headers), "body": hashlib.sha256(), "n": 0}
                self.owner.requests.append(dict(ev.headers))
                hd = dict(ev.headers)
                if hd.get(":method") == "CONNECT" and hd.get(":protocol") == "websocket":
                    self.streams[ev.stream_id]["ws"] = b""
                    self.conn.send_headers(ev.stream_id, [(":status", "200")])
                elif ev.stream_ended:
                    self.respond(ev.stream_id)
            elif isinstance(ev, h2.events.DataReceived) and "ws" in self.streams.get(ev.stream_id, {}):
                self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                self.ws_echo(ev.stream_id, ev.data)
            elif isinstance(ev, h2.events.DataReceived):
                st = self.streams.get(ev.stream_id)
                if st is not None:
                    st["body"].update(ev.data)
                    st["n"] += len(ev.data)
                self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded) and "ws" in self.streams.get(ev.stream_id, {}):
                if self.streams.pop(ev.stream_id).get("open", True):
                    self.conn.end_stream(ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded):
                self.respond(ev.stream_id)
            elif isinstance(ev, h2.events.WindowUpdated):
                for w in list(self.waiters.values()):
                    if not w.done():
                        w.set_result(None)
            elif isinstance(ev, h2.events.StreamReset):
                self.owner.resets.append(ev.error_code)
        self.transport.write(self.conn.data_to_send())

    def ws_echo(self, sid, data):
        """Echoes the client's (masked) WebSocket frames unmasked; a close frame is answered and
        ends the stream. Messages are sent back whole, however the client framed them."""
        st = self.streams[sid]
        st["ws"] += data
        while True:
            b = st["ws"]
            if len(b) < 2:
                return
            opcode, n, at = b[0] & 0x0F, b[1] & 0x7F, 2
            if n == 126:
                n, at = int.from_bytes(b[2:4], "big"), 4
            elif n == 127:
                n, at = int.from_bytes(b[2:10], "big"), 10
            if len(b) < at + 4 + n:
                return
            mask, payload = b[at:at + 4], b[at + 4:at + 4 + n]
            st["ws"] = b[at + 4 + n:]
            payload = bytes(x ^ mask[i % 4] for i, x in enumerate(payload))
            self.owner.ws_messages.append(payload)
            if n < 126:
                head = bytes([0x80 | opcode, n])
            elif n < 65536:
                head = bytes([0x80 | opcode, 126]) + n.to_bytes(2, "big")
            else:
                head = bytes([0x80 | opcode, 127]) + n.to_bytes(8, "big")
            asyncio.ensure_future(self._send(sid, head + payload, end=opcode == 8))
            if opcode == 8:
                st["open"] = False
                return

    def h1_received(self, data):
        self.pending += data
        while True:
            end = self.pending.find(b"\r\n\r\n")
            if end < 0:
                return
            lines = self.pending[:end].decode("latin1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            hdrs = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
            n = int(hdrs.get("content-length", "0"))
            if len(self.pending) < end + 4 + n:
                return
            self.pending = self.pending[end + 4 + n:]
            self.owner.requests.append({":method": method, ":path": target, **hdrs})
            body = f"ok h1 {self.owner.name}\n".encode()
            self.transport.write(f"HTTP/1.1 200 OK\r\ncontent-length: {len(body)}\r\nx-backend: {self.owner.name}\r\n"
                                 "\r\n".encode() + body)

    def connection_lost(self, exc):
        for w in self.waiters.values():
            if not w.done():
                w.set_result(None)

    def respond(self, sid):
        asyncio.ensure_future(self._respond(sid))

    async def _send(self, sid, data, end=True):
        while data:
            window = min(self.conn.local_flow_control_window(sid), self.conn.max_outbound_frame_size)
            if window <= 0:
                fut = asyncio.get_event_loop().create_future()
                self.waiters[sid] = fut
                await fut
                if self.transport.is_closing():
                    return
                continue
            self.conn.send_data(sid, data[:window])
            data = data[window:]
            self.transport.write(self.conn.data_to_send())
        if end:
            self.conn.end_stream(sid)
            self.transport.write(self.conn.data_to_send())

    async def _respond(self, sid):
        st = self.streams.pop(sid, None)
        if st is None:
            return
        self.owner.bodies.append((st["n"], st["body"].hexdigest()))
        hdrs = st["headers"]
        url = urllib.parse.urlsplit(hdrs.get(":path", "/"))
        q = dict(urllib.parse.parse_qsl(url.query))
        base = [("x-backend", self.owner.name)]
        try:
            if url.path == "/sink":
                body = f"{st['n']} {st['body'].hexdigest()}".encode()
                self.conn.send_headers(sid, [(":status", "200"), ("content-length", str(len(body)))] + base)
                await self._send(sid, body)
            elif url.path == "/source":
                n = int(q.get("n", "0"))
                self.conn.send_headers(sid, [(":status", "200")] + base)
                block = b"y" * 65536
                while n > 0:
                    k = min(n, len(block))
                    await self._send(sid, block[:k], end=False)
                    n -= k
                self.conn.end_stream(sid)
            elif url.path == "/slow":
                await asyncio.sleep(float(q.get("s", "1")))
                self.conn.send_headers(sid, [(":status", "200")] + base)
                await self._send(sid, b"slow\n")
            elif url.path == "/cookie":  # a new session cookie each time
                self.conn.send_headers(sid, [(":status", "200"), ("set-cookie", f"s={os.urandom(12).hex()}"),
                                             ("x-served-by", "cookie-jar")] + base)
                await self._send(sid, b"cookie\n")
            elif url.path == "/status":
                self.conn.send_headers(sid, [(":status", q.get("code", "200"))] + base)
                await self._send(sid, b"status\n")
            elif url.path == "/early-hints":  # two 103s, then the answer
                for css in ("a", "b"):
                    self.conn.send_headers(sid, [(":status", "103"), ("link", f"</{css}.css>; rel=preload")])
                    self.transport.write(self.conn.data_to_send())
                self.conn.send_headers(sid, [(":status", "200"), ("content-length", "4")] + base)
                await self._send(sid, b"done")
            elif url.path == "/trailers":
                self.conn.send_headers(sid, [(":status", "200"), ("trailer", "x-checksum")] + base)
                await self._send(sid, b"with trailers\n", end=False)
                self.conn.send_headers(sid, [("x-checksum", "abc123")], end_stream=True)
            elif url.path == "/reset":
                self.conn.reset_stream(sid, h2.errors.ErrorCodes.REFUSED_STREAM if q.get("refused") else
                                       h2.errors.ErrorCodes.INTERNAL_ERROR)
            elif url.path == "/reset-after-headers":
                self.conn.send_headers(sid, [(":status", "200")] + base)
                await self._send(sid, b"partial", end=False)
                await asyncio.sleep(0.3)
                self.conn.reset_stream(sid, h2.errors.ErrorCodes.INTERNAL_ERROR)
            else:
                body = f"ok h2 {self.owner.name}\n".encode()
                self.conn.send_headers(sid, [(":status", "200"), ("content-length", str(len(body)))] + base)
                await self._send(sid, body)
        except Exception:  # noqa: BLE001 - the stream was reset meanwhile
            pass
        self.transport.write(self.conn.data_to_send())


class H2Backend:
    def __init__(self, name="h2backend", port=0, ssl=None, connect_protocol=False):
        self.name = name
        self.connect_protocol = connect_protocol
        self.ws_messages = []
        self.alpn = []
        self.protocols = []
        self.requests = []
        self.bodies = []      # (length, sha256) of each request body, as its stream ended
        self.resets = []
        self.connections = 0
        self.conns = []       # each connection's _Conn: its h2 state (HPACK tables) can be looked at
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run():
            asyncio.set_event_loop(self.loop)
            self.server = self.loop.run_until_complete(
                self.loop.create_server(lambda: _Conn(self), "127.0.0.1", port, ssl=ssl))
            self.port = self.server.sockets[0].getsockname()[1]
            ready.set()
            self.loop.run_forever()
            # stop() cancelled the tasks; let them finish, so that none is destroyed pending
            pending = asyncio.all_tasks(self.loop)
            if pending:
                self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        ready.wait(10)

    def stop(self):
        def close():
            self.server.close()
            for t in asyncio.all_tasks(self.loop):
                t.cancel()
            self.loop.stop()
        self.loop.call_soon_threadsafe(close)
        self.thread.join(5)
