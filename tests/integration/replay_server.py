"""Replays recorded Consul and Kubernetes API responses for the discovery tests.

Neither Consul nor a Kubernetes API server can run here, so the consul: and kubernetes: sources
are tested against this server, which speaks just enough of both APIs, with the semantics the
sources depend on, driven step by step by the test:

Consul (fixtures tests/fixtures/consul/*.json: lists of recorded exchanges
{"request": "GET /v1/...", "headers": {...}, "body": ...}):
  - load(step) makes a recording the current answer for its path; X-Consul-Index comes from the
    recording, so each path has its own index, as in Consul;
  - blocking queries: a request with ?index=N is held while the current answer's index is <= N,
    until the test loads a newer recording or ?wait= runs out (then the same answer and index);
  - /v1/health/service/NAME honours ?passing: entries with a check that is not "passing" are
    left out only when the client asks for passing instances.

Kubernetes (fixtures tests/fixtures/kubernetes/*.json: a recorded PodList, recorded watch
events, a recorded 410 Status):
  - the pods of the recorded PodList are the server's state; GET .../pods lists them (label
    selector "KEY" = has the label, ?limit/&continue pages), with the current resourceVersion;
  - ?watch=1&resourceVersion=RV streams, as chunked JSON lines, the events after RV and then
    each event the test pushes (event(), which also updates the state and the resourceVersion);
  - expire() makes every resourceVersion so far too old: open watches get the recorded ERROR
    event (code 410) and end; new watches from an old version get it at once (or, with
    expire(as_http=True), an HTTP 410 answer);
  - with a token, requests without "Authorization: Bearer TOKEN" get 401.

Every request is logged in .requests as (time, method, path, query dict, headers dict).
"""
import json
import os
import socket
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures")


def fixture(path):
    with open(os.path.join(FIXTURES, path)) as f:
        return json.load(f)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):  # noqa: N802 - http.server's naming
        r = self.server.replay
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
        headers = {k.lower(): v for k, v in self.headers.items()}
        r._log(self.command, url.path, query, headers)
        r._track(self.connection, True)
        try:
            if r.token is not None and headers.get("authorization") != f"Bearer {r.token}":
                return self._json(401, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                        "message": "Unauthorized", "reason": "Unauthorized", "code": 401})
            if url.path.startswith("/v1/"):
                return r._consul(self, url.path, query)
            if url.path.startswith("/api/v1/namespaces/") and url.path.endswith("/pods"):
                return r._pods(self, url.path.split("/")[4], query)
            self._json(404, {"message": f"no recording for {url.path}"})
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            r._track(self.connection, False)

    def _json(self, status, body, headers=None):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _chunk(self, obj):
        data = json.dumps(obj).encode() + b"\n"
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()


class ReplayServer:
    def __init__(self, port=0, token=None):
        self.port = port
        self.token = token
        self.cond = threading.Condition()
        self.requests = []
        self.consul = {}        # path -> recorded exchange
        self.pods = {}          # uid -> pod
        self.namespace = {}     # uid -> namespace
        self.rv = 1
        self.events = []        # (rv, event)
        self.oldest_rv = 0
        self.expired_as_http = False
        self.generation = 0     # bumped by expire(): open watches end with 410
        self.stopping = False
        self.conns = set()
        self.httpd = None
        self.thread = None

    # ---- life ----

    def start(self):
        self.stopping = False
        self.httpd = _Server(("127.0.0.1", self.port), _Handler)
        self.httpd.replay = self
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        """Stops listening and cuts every open connection (a backend that went away)."""
        if self.httpd is None:
            return
        with self.cond:
            self.stopping = True
            self.cond.notify_all()
            conns = list(self.conns)
        self.httpd.shutdown()
        self.httpd.server_close()
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.thread.join(timeout=5)
        self.httpd = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def _log(self, method, path, query, headers):
        with self.cond:
            self.requests.append((time.monotonic(), method, path, query, headers))

    def _track(self, conn, add):
        with self.cond:
            (self.conns.add if add else self.conns.discard)(conn)

    def requests_to(self, prefix):
        with self.cond:
            return [r for r in self.requests if r[2].startswith(prefix)]

    # ---- Consul ----

    def load(self, name):
        """Makes the exchanges recorded in fixture `name` the current answers."""
        with self.cond:
            for ex in fixture(name):
                method, target = ex["request"].split(" ", 1)
                self.consul[urllib.parse.urlsplit(target).path] = ex
            self.cond.notify_all()

    def _consul(self, h, path, query):
        wait_s = min(_duration(query.get("wait", "300s")), 30.0)
        want = int(query.get("index", "0") or 0)
        deadline = time.monotonic() + wait_s
        with self.cond:
            while True:
                ex = self.consul.get(path)
                if ex is None and path.startswith("/v1/health/service/"):
                    index = max([int(e["headers"]["X-Consul-Index"]) for e in self.consul.values()] or [1])
                    ex = {"headers": {"X-Consul-Index": str(index)}, "body": []}
                if ex is None:
                    break
                index = int(ex["headers"]["X-Consul-Index"])
                left = deadline - time.monotonic()
                if want == 0 or index > want or left <= 0 or self.stopping:
                    break
                self.cond.wait(left)
            if self.stopping:
                return
        if ex is None:
            return h._json(404, {"message": f"no recording for {path}"})
        body = ex["body"]
        if path.startswith("/v1/health/service/") and "passing" in query:
            body = [e for e in body if all(c.get("Status") == "passing" for c in e.get("Checks", []))]
        h._json(ex.get("status", 200), body, ex["headers"])

    # ---- Kubernetes ----

    def pod_list(self, name):
        """Replaces the pods with those of the recorded PodList in fixture `name`."""
        rec = fixture(name)
        with self.cond:
            self.pods.clear()
            for p in rec["body"]["items"]:
                self.pods[p["metadata"]["uid"]] = p
            self.rv = max(self.rv, int(rec["body"]["metadata"]["resourceVersion"]))
            self.cond.notify_all()

    def event(self, ev):
        """Applies a recorded watch event and streams it to the open watches."""
        with self.cond:
            self.rv += 1
            ev = json.loads(json.dumps(ev))
            ev["object"]["metadata"]["resourceVersion"] = str(self.rv)
            uid = ev["object"]["metadata"]["uid"]
            if ev["type"] == "DELETED":
                self.pods.pop(uid, None)
            else:
                self.pods[uid] = ev["object"]
            self.events.append((self.rv, ev))
            self.cond.notify_all()

    def expire(self, as_http=False):
        """Makes every resourceVersion seen so far too old (410 Gone)."""
        with self.cond:
            self.rv += 1
            self.oldest_rv = self.rv
            self.expired_as_http = as_http
            self.generation += 1
            self.cond.notify_all()

    @staticmethod
    def _selected(pod, selector):
        return not selector or selector in (pod["metadata"].get("labels") or {})

    @staticmethod
    def _gone():
        return fixture("kubernetes/watch_410.json")

    def _pods(self, h, ns, query):
        selector = query.get("labelSelector", "")
        if query.get("watch") in ("1", "true"):
            return self._watch(h, ns, selector, query)
        with self.cond:
            items = sorted((p for p in self.pods.values()
                            if p["metadata"]["namespace"] == ns and self._selected(p, selector)),
                           key=lambda p: p["metadata"]["name"])
            rv = self.rv
        limit = int(query.get("limit", "0") or 0)
        start = int(query.get("continue", "0") or 0)
        page = items[start:start + limit] if limit else items[start:]
        more = str(start + limit) if limit and start + limit < len(items) else None
        meta = {"resourceVersion": str(rv)}
        if more:
            meta["continue"] = more
        h._json(200, {"kind": "PodList", "apiVersion": "v1", "metadata": meta, "items": page})

    def _watch(self, h, ns, selector, query):
        since = int(query.get("resourceVersion", "0") or 0)
        timeout = min(int(query.get("timeoutSeconds", "300")), 300)
        deadline = time.monotonic() + timeout
        with self.cond:
            too_old, as_http = since < self.oldest_rv, self.expired_as_http
        if too_old and as_http:
            gone = self._gone()["object"]
            return h._json(410, gone)
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        if too_old:
            h._chunk(self._gone())
            h.wfile.write(b"0\r\n\r\n")
            return
        sent, generation = since, self.generation
        while True:
            with self.cond:
                while True:
                    expired = self.generation != generation
                    pending = [(rv, ev) for rv, ev in self.events if rv > sent]
                    left = deadline - time.monotonic()
                    if expired or pending or self.stopping or left <= 0:
                        break
                    self.cond.wait(min(left, 0.5))
                if self.stopping:
                    return
            if expired:
                h._chunk(self._gone())
                break
            if not pending:
                break
            for rv, ev in pending:
                sent = rv
                obj = ev["object"]
                if obj["metadata"]["namespace"] == ns and self._selected(obj, selector):
                    h._chunk(ev)
        h.wfile.write(b"0\r\n\r\n")
        h.wfile.flush()


def _duration(s):
    s = s.strip()
    for unit, mult in (("ms", 0.001), ("s", 1.0), ("m", 60.0)):
        if s.endswith(unit):
            return float(s[:-len(unit)]) * mult
    return float(s)
