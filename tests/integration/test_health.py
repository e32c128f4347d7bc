"""Active health checks: HTTP, TCP and gRPC Health v1 checks take hosts out of the load balancer
after unhealthy_threshold failures and bring them back after healthy_threshold successes; checks
run once per proxy, not once per worker; reloads keep the state of hosts that stay."""
import http.server
import socket
import threading
import time
from concurrent import futures

import pytest

from conftest import free_port, http_get, simple_mesh, wait_for

CLUSTER = "backend"


class HealthBackend:
    """An HTTP/1.1 backend: GET /health answers `health_status` (200 by default); anything else
    answers 200 "ok NAME". Records each health check (time, path, headers) and counts the rest."""

    def __init__(self, name, port=0):
        self.name = name
        self.lock = threading.Lock()
        self.health_status = 200
        self.health_delay = 0.0
        self.health_headers = {}     # extra headers of the check's answer
        self.checks = []
        self.peers = []              # the client port of each check: one per connection used
        self.traffic = 0
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):  # noqa: N802 - the stdlib's name
                path = self.path.split("?", 1)[0]
                if path.startswith("/health"):
                    with owner.lock:
                        owner.checks.append((time.monotonic(), path, {k.lower(): v for k, v in self.headers.items()}))
                        owner.peers.append(self.client_address[1])
                        status, delay, extra = owner.health_status, owner.health_delay, dict(owner.health_headers)
                    if delay:
                        time.sleep(delay)
                    body = b"health\n"
                else:
                    with owner.lock:
                        owner.traffic += 1
                    status, body, extra = 200, f"ok {owner.name}\n".encode(), {}
                self.send_response(status)
                for k, v in extra.items():
                    self.send_header(k, v)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.handler = Handler
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.addr = f"127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def set_health(self, status):
        """Sets the answer of later checks; returns the number of checks so far."""
        with self.lock:
            self.health_status = status
            return len(self.checks)

    def nchecks(self, path=None):
        with self.lock:
            return sum(1 for c in self.checks if path is None or c[1] == path)

    def ntraffic(self):
        with self.lock:
            return self.traffic

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def backends():
    made = []

    def make(name, port=0):
        b = HealthBackend(name, port)
        made.append(b)
        return b
    yield make
    for b in made:
        b.stop()


def check(interval=200, timeout=500, unhealthy=3, healthy=2, jitter=0, **checker):
    if not checker:
        checker = {"http_health_check": {"path": "/health"}}
    return {"interval_msec": interval, "timeout_msec": timeout, "interval_jitter_msec": jitter,
            "unhealthy_threshold": unhealthy, "healthy_threshold": healthy, "health_checker": checker}


def healthy(g, addr, cluster=CLUSTER):
    return g.metric("gyrus_cluster_host_healthy", cluster=cluster, host=addr)


def wait_health(g, addr, value, timeout=10, cluster=CLUSTER):
    wait_for(lambda: healthy(g, addr, cluster) == value, timeout, what=f"{addr} healthy == {value}")


def get_n(port, n, path="/"):
    statuses = [http_get(f"http://127.0.0.1:{port}{path}")[0] for _ in range(n)]
    return statuses


# ---- HTTP ----

def test_http_check_takes_host_out_and_back(gyrus_factory, backends):
    a, b = backends("a"), backends("b")
    port = free_port()
    g = gyrus_factory(simple_mesh(port, [a.port, b.port], cluster_extra={"health_checks": [check(unhealthy=3, healthy=2)]}),
                      "test")
    wait_for(lambda: a.nchecks() >= 2 and b.nchecks() >= 2, what="first checks")
    _, path, headers = a.checks[0]
    assert path == "/health"
    assert headers["host"] == CLUSTER
    assert headers["user-agent"] == "gyrus-health-check"
    assert healthy(g, a.addr) == 1 and healthy(g, b.addr) == 1
    assert g.metric("gyrus_cluster_health_check_success_total", cluster=CLUSTER, host=a.addr) >= 2

    n0 = a.set_health(503)
    wait_health(g, a.addr, 0)
    assert 3 <= a.nchecks() - n0 <= 5
    assert g.output().count(f'host {a.addr} is unhealthy after 3 failed http checks in a row (status 503)') == 1
    assert g.metric("gyrus_cluster_health_check_failure_total", cluster=CLUSTER, host=a.addr) >= 3

    ta, tb = a.ntraffic(), b.ntraffic()
    assert get_n(port, 20) == [200] * 20
    assert a.ntraffic() == ta, "an unhealthy host got traffic"
    assert b.ntraffic() == tb + 20

    a.set_health(200)
    wait_health(g, a.addr, 1)
    assert g.output().count(f"host {a.addr} is healthy again after 2 http checks in a row") == 1
    ta = a.ntraffic()
    assert get_n(port, 20) == [200] * 20
    assert a.ntraffic() > ta, "a host back in health got no traffic"


@pytest.mark.parametrize("reuse", [True, False])
def test_http_checks_reuse_their_connection(gyrus_factory, backends, reuse):
    """reuse_connection (Envoy's default, true): one connection serves check after check; false:
    each check has its own, closed after it."""
    a = backends("a")
    hc = check(interval=100)
    if not reuse:
        hc["reuse_connection"] = False
    g = gyrus_factory(simple_mesh(free_port(), [a.port], cluster_extra={"health_checks": [hc]}), "test")
    wait_for(lambda: a.nchecks() >= 8, what="8 checks")
    with a.lock:
        peers, heads = list(a.peers), [c[2] for c in a.checks]
    if reuse:
        assert len(set(peers)) == 1, peers
        assert all("connection" not in h for h in heads)
    else:
        assert len(set(peers)) == len(peers), peers
        assert all(h.get("connection") == "close" for h in heads)
    assert g.metric("gyrus_cluster_health_check_failure_total", cluster=CLUSTER) == 0


def test_kept_check_connection_closed_by_the_server_costs_no_failure(gyrus_factory, backends):
    """A server closing idle connections before the next check (a keep-alive timeout shorter
    than the interval): the check goes on a new connection, and no check fails for it."""
    a = backends("a")
    a.handler.timeout = 0.05  # the stdlib server drops a connection idle for 50 ms
    g = gyrus_factory(simple_mesh(free_port(), [a.port], cluster_extra={"health_checks": [check(interval=150)]}),
                      "test")
    wait_for(lambda: a.nchecks() >= 8, what="8 checks")
    with a.lock:
        peers = list(a.peers)
    assert len(set(peers)) >= 4, peers  # connections were indeed closed and made again
    assert g.metric("gyrus_cluster_health_check_failure_total", cluster=CLUSTER) == 0
    assert healthy(g, a.addr) == 1


def test_http_expected_statuses_and_host_header(gyrus_factory, backends):
    a = backends("a")
    a.set_health(418)
    hc = check(unhealthy=2, http_health_check={"path": "/health", "host": "health.internal",
                                               "expected_statuses": [{"start": 418, "end": 419}]})
    g = gyrus_factory(simple_mesh(free_port(), [a.port], cluster_extra={"health_checks": [hc]}), "test")
    wait_for(lambda: g.metric("gyrus_cluster_health_check_success_total", cluster=CLUSTER, host=a.addr) >= 3,
             what="three passing checks")
    assert healthy(g, a.addr) == 1
    assert a.checks[-1][2]["host"] == "health.internal"
    a.set_health(200)  # not in the expected range any more
    wait_health(g, a.addr, 0)


def test_http_check_headers_to_add_and_service_name(gyrus_factory, backends):
    """request_headers_to_add goes out with every check (append: false replaces our user-agent);
    service_name makes a check pass only when x-envoy-upstream-healthchecked-cluster starts with
    it, as Envoy does, so that a host that is up but runs another service is not taken."""
    a = backends("a")
    hc = check(unhealthy=2, healthy=2, http_health_check={
        "path": "/health", "service_name": "billing",
        "request_headers_to_add": [{"key": "x-probe", "value": "gyrus hc"},
                                   {"header": {"key": "user-agent", "value": "probe/1"}, "append": False}]})
    g = gyrus_factory(simple_mesh(free_port(), [a.port], cluster_extra={"health_checks": [hc]}), "test")
    wait_for(lambda: g.metric("gyrus_cluster_health_check_failure_total", cluster=CLUSTER, host=a.addr) >= 2,
             what="failing checks: the answer names no service")
    wait_health(g, a.addr, 0)
    assert "no x-envoy-upstream-healthchecked-cluster in the answer (service_name \"billing\")" in g.output()
    heads = a.checks[-1][2]
    assert heads["x-probe"] == "gyrus hc"
    assert heads["user-agent"] == "probe/1"
    assert heads["host"] == CLUSTER

    with a.lock:
        a.health_headers = {"x-envoy-upstream-healthchecked-cluster": "billing-v2"}  # a prefix match
    wait_health(g, a.addr, 1)
    with a.lock:
        a.health_headers = {"x-envoy-upstream-healthchecked-cluster": "payments"}
    wait_health(g, a.addr, 0)
    assert 'x-envoy-upstream-healthchecked-cluster is "payments", not service_name "billing"' in g.output()


def test_http_check_timeout_and_dead_host(gyrus_factory, backends):
    a = backends("slow")
    a.health_delay = 1.0
    dead = free_port()
    port = free_port()
    mesh = simple_mesh(port, [a.port, dead], cluster_extra={"health_checks": [check(timeout=150, unhealthy=2)]})
    g = gyrus_factory(mesh, "test")
    wait_health(g, a.addr, 0)
    wait_health(g, f"127.0.0.1:{dead}", 0)
    out = g.output()
    assert f"host {a.addr} is unhealthy after 2 failed http checks in a row (timed out after 150 ms)" in out
    assert f"host 127.0.0.1:{dead} is unhealthy after 2 failed http checks in a row (connect: Connection refused)" in out
    # The dead host comes up: healthy again after two checks.
    b = backends("revived", dead)
    wait_health(g, b.addr, 1)


def test_checks_run_once_per_proxy(gyrus_factory, backends):
    a = backends("a")
    g = gyrus_factory(simple_mesh(free_port(), [a.port], cluster_extra={"health_checks": [check(interval=200)]}),
                      "test", workers=4)
    wait_for(lambda: a.nchecks() >= 1, what="a first check")
    n0, t0 = a.nchecks(), time.monotonic()
    time.sleep(2.0)
    n, dt = a.nchecks() - n0, time.monotonic() - t0
    # One checker: about dt / 0.2 checks (each takes a little time); four would make ~40.
    assert dt / 0.2 * 0.6 <= n <= dt / 0.2 + 1, f"{n} checks in {dt:.2f}s with 4 workers"
    assert g.alive()


def test_no_traffic_interval_until_the_first_request(gyrus_factory, backends):
    """no_traffic_interval_msec (Envoy's no_traffic_interval): a cluster no request went to yet
    is checked at that interval; after the first request, at interval_msec."""
    a = backends("a")
    hc = check(interval=100)
    hc["no_traffic_interval_msec"] = 1500
    port = free_port()
    gyrus_factory(simple_mesh(port, [a.port], cluster_extra={"health_checks": [hc]}), "test")
    wait_for(lambda: a.nchecks() >= 3, timeout=10, what="3 checks without traffic")
    with a.lock:
        t = [c[0] for c in a.checks]
    gaps = [b - x for x, b in zip(t[1:], t[2:])]  # after the first (spread) one and the edge one
    assert gaps and min(gaps) > 1.0, gaps  # 1.5 s apart, not 0.1 s
    assert get_n(port, 1) == [200]
    n0 = a.nchecks()
    wait_for(lambda: a.nchecks() >= n0 + 8, timeout=5, what="checks at interval_msec after traffic")


def test_jitter_spreads_checks(gyrus_factory, backends):
    a = backends("a")
    gyrus_factory(simple_mesh(free_port(), [a.port], cluster_extra={"health_checks": [check(interval=100, jitter=200)]}),
                  "test")
    wait_for(lambda: a.nchecks() >= 12, timeout=15, what="twelve checks")
    times = [c[0] for c in a.checks]
    gaps = [b - a for a, b in zip(times[1:], times[2:])]
    assert all(0.09 <= gap <= 0.6 for gap in gaps), gaps
    assert max(gaps) - min(gaps) > 0.05, f"no jitter: {gaps}"


def test_unhealthy_and_edge_intervals(gyrus_factory, backends):
    """Envoy's intervals: every 100 ms while healthy; 300 ms before the first check after the host
    turns unhealthy (unhealthy_edge_interval), then every 700 ms (unhealthy_interval); 30 ms
    before the first check after it is healthy again (healthy_edge_interval), then 100 ms."""
    a = backends("a")
    hc = {**check(interval=100, unhealthy=2, healthy=1), "unhealthy_interval_msec": 700,
          "unhealthy_edge_interval_msec": 300, "healthy_edge_interval_msec": 30}
    g = gyrus_factory(simple_mesh(free_port(), [a.port], cluster_extra={"health_checks": [hc]}), "test")
    wait_for(lambda: a.nchecks() >= 3, what="first checks")
    n0 = a.set_health(503)
    wait_health(g, a.addr, 0)
    wait_for(lambda: a.nchecks() >= n0 + 5, timeout=10, what="checks while unhealthy")
    times = [c[0] for c in a.checks]
    k = n0 + 1  # the check that turned it unhealthy (the second failure); the gaps after it:
    gaps = [b - x for x, b in zip(times[k:k + 3], times[k + 1:k + 4])]
    assert 0.25 <= gaps[0] <= 0.5, gaps        # the unhealthy edge
    assert all(0.65 <= gap <= 1.0 for gap in gaps[1:]), gaps
    n1 = a.set_health(200)
    wait_health(g, a.addr, 1)
    wait_for(lambda: a.nchecks() >= n1 + 4, timeout=10, what="checks after recovery")
    times = [c[0] for c in a.checks]
    k = n1  # the first healthy answer, an unhealthy interval after the last failure
    assert times[k] - times[k - 1] >= 0.65
    gaps = [b - x for x, b in zip(times[k:k + 2], times[k + 1:k + 3])]
    assert gaps[0] <= 0.08, gaps               # the healthy edge
    assert 0.09 <= gaps[1] <= 0.3, gaps


def test_reload_keeps_state_and_stops_removed_hosts(gyrus_factory, backends):
    a, b = backends("a"), backends("b")
    port = free_port()
    hc = check(unhealthy=2, healthy=2)
    g = gyrus_factory(simple_mesh(port, [a.port, b.port], cluster_extra={"health_checks": [hc]}), "test")
    b.set_health(500)
    wait_health(g, b.addr, 0)
    gen = g.generation()

    # a leaves the cluster; b stays, still unhealthy, and is checked on a new path.
    hc2 = check(unhealthy=2, healthy=2, http_health_check={"path": "/health2"})
    g.write_mesh(simple_mesh(port, [b.port], cluster_extra={"health_checks": [hc2]}))
    wait_for(lambda: g.generation() > gen, what="reload")
    na = a.nchecks()
    assert healthy(g, b.addr) == 0, "reload forgot that b is unhealthy"
    wait_for(lambda: b.nchecks("/health2") >= 1, what="a check on the new path")
    time.sleep(0.6)
    assert a.nchecks() <= na + 1, "a removed host is still checked"  # one may have been in flight
    assert g.output().count(f"host {b.addr} is unhealthy after") == 1
    b.set_health(200)
    wait_health(g, b.addr, 1)

    # Without health_checks, a failing host is no longer held out.
    b.set_health(500)
    wait_health(g, b.addr, 0)
    gen = g.generation()
    g.write_mesh(simple_mesh(port, [b.port]))
    wait_for(lambda: g.generation() > gen, what="reload")
    assert healthy(g, b.addr) == 1
    nb = b.nchecks()
    time.sleep(0.6)
    assert b.nchecks() <= nb + 1


def test_panic_threshold_all_unhealthy_still_served(gyrus_factory, backends):
    a, b = backends("a"), backends("b")
    port = free_port()
    g = gyrus_factory(simple_mesh(port, [a.port, b.port], cluster_extra={"health_checks": [check(unhealthy=2)]}), "test")
    a.set_health(503)
    b.set_health(503)
    wait_health(g, a.addr, 0)
    wait_health(g, b.addr, 0)
    ta, tb = a.ntraffic(), b.ntraffic()
    assert get_n(port, 20) == [200] * 20
    assert a.ntraffic() > ta and b.ntraffic() > tb, "panic mode should spread over every host"


def test_panic_threshold_zero_refuses(gyrus_factory, backends):
    a = backends("a")
    port = free_port()
    extra = {"health_checks": [check(unhealthy=2)], "common_lb_config": {"healthy_panic_threshold": {"value": 0}}}
    g = gyrus_factory(simple_mesh(port, [a.port], cluster_extra=extra), "test")
    a.set_health(503)
    wait_health(g, a.addr, 0)
    ta = a.ntraffic()
    assert get_n(port, 5) == [503] * 5
    assert a.ntraffic() == ta


# ---- TCP ----

class TcpServer:
    """Answers each connection according to `mode`: "pong" sends b"..PONG..READY" once it has
    read b"PING"; "wrong" sends b"NOPE"; "silent" reads and says nothing; "accept" says nothing
    and closes at once; "loop" answers every PING with PONG READY on the same connection until
    the client closes. Counts connections and (in "loop") the PINGs."""

    def __init__(self, port=0):
        self.mode = "pong"
        self.connections = 0
        self.pings = 0
        self.received = b""
        self.lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.addr = f"127.0.0.1:{self.port}"
        self.running = True
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while self.running:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        with c:
            c.settimeout(2)
            mode = self.mode
            if mode == "accept":
                return
            if mode == "loop":
                self._loop(c)
                return
            data = b""
            try:
                while b"PING" not in data:
                    chunk = c.recv(100)
                    if not chunk:
                        return
                    data += chunk
                with self.lock:
                    self.received = data
                if mode == "pong":
                    c.sendall(b"..PO")
                    time.sleep(0.02)
                    c.sendall(b"NG..READY\n")
                elif mode == "wrong":
                    c.sendall(b"NOPE\n")
                else:
                    time.sleep(1)
            except OSError:
                pass

    def _loop(self, c):
        c.settimeout(30)
        data = b""
        try:
            while self.mode == "loop":
                chunk = c.recv(100)
                if not chunk:
                    return
                data += chunk
                while b"PING" in data:
                    data = data.split(b"PING", 1)[1]
                    with self.lock:
                        self.pings += 1
                    c.sendall(b"PONG READY\n")
        except OSError:
            pass

    def stop(self):
        self.running = False
        self.sock.close()


def tcp_mesh(port, servers, tcp):
    return simple_mesh(port, [s.port for s in servers],
                       cluster_extra={"health_checks": [check(unhealthy=2, healthy=2, tcp_health_check=tcp)]})


def test_tcp_check_send_receive(gyrus_factory):
    s = TcpServer()
    try:
        tcp = {"send": "50494e47", "receive": ["504f4e47", "5245414459"]}  # PING → PONG, READY
        g = gyrus_factory(tcp_mesh(free_port(), [s], tcp), "test")
        wait_for(lambda: g.metric("gyrus_cluster_health_check_success_total", cluster=CLUSTER, host=s.addr) >= 2,
                 what="passing TCP checks")
        assert s.received == b"PING"
        assert healthy(g, s.addr) == 1
        s.mode = "wrong"
        wait_health(g, s.addr, 0)
        assert "failed tcp checks in a row (connection closed before the expected bytes came)" in g.output()
        s.mode = "pong"
        wait_health(g, s.addr, 1)
        s.mode = "silent"
        wait_health(g, s.addr, 0)
        assert "failed tcp checks in a row (timed out after 500 ms)" in g.output()
    finally:
        s.stop()


def test_tcp_check_reuses_its_connection(gyrus_factory):
    """A TCP check that expects an answer keeps its connection (reuse_connection, true by default)
    and sends again on it; when the server closes it, the next check opens another and nothing
    fails. A connect-only check still connects each time: the connect is what it checks."""
    s = TcpServer()
    s.mode = "loop"
    try:
        tcp = {"send": "50494e47", "receive": ["504f4e47"]}
        g = gyrus_factory(tcp_mesh(free_port(), [s], tcp), "test")
        wait_for(lambda: s.pings >= 6, what="six checks")
        assert s.connections == 1
        s.mode = "pong"  # the looping connection ends; later connections answer once and close
        n = s.connections
        wait_for(lambda: s.connections >= n + 3, what="checks on new connections")
        assert g.metric("gyrus_cluster_health_check_failure_total", cluster=CLUSTER) == 0
        assert healthy(g, s.addr) == 1
    finally:
        s.stop()
    quiet = TcpServer()
    quiet.mode = "loop"  # keeps every connection open, says nothing unasked
    try:
        g = gyrus_factory(tcp_mesh(free_port(), [quiet], {}), "test")
        wait_for(lambda: quiet.connections >= 4, what="a connection per connect-only check")
        assert quiet.pings == 0
    finally:
        quiet.stop()


def test_tcp_connect_only(gyrus_factory):
    port = free_port()
    g = gyrus_factory(simple_mesh(free_port(), [port], cluster_extra={"health_checks": [
        check(unhealthy=2, healthy=2, tcp_health_check={})]}), "test")
    addr = f"127.0.0.1:{port}"
    wait_health(g, addr, 0)
    s = TcpServer(port)
    s.mode = "accept"
    try:
        wait_health(g, addr, 1)
        assert s.connections >= 2
    finally:
        s.stop()


# ---- gRPC Health v1 ----

try:
    import grpc  # python3-grpcio (scripts/install-deps)
except ImportError:  # pragma: no cover
    grpc = None

needs_grpc = pytest.mark.skipif(grpc is None, reason="python3-grpcio is not installed (scripts/install-deps)")


class GrpcHealth:
    """grpc.health.v1.Health/Check served by grpcio without generated code: raw request bytes in,
    a hand-encoded HealthCheckResponse{status} out."""

    SERVING, NOT_SERVING = 1, 2

    def __init__(self, port=0, credentials=None):
        self.status = self.SERVING
        self.abort = None
        self.services = []
        self.metadata = []
        self.peers = []      # the client address of each call: one per connection used

        def check_rpc(request, context):
            self.peers.append(context.peer())
            self.services.append(self._service(request))
            self.metadata.append(dict(context.invocation_metadata()))
            if self.abort is not None:
                context.abort(self.abort, "not today")
            return bytes([0x08, self.status])

        handler = grpc.method_handlers_generic_handler("grpc.health.v1.Health", {
            "Check": grpc.unary_unary_rpc_method_handler(check_rpc)})
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        self.server.add_generic_rpc_handlers((handler,))
        self.port = (self.server.add_secure_port(f"127.0.0.1:{port}", credentials) if credentials else
                     self.server.add_insecure_port(f"127.0.0.1:{port}"))
        self.addr = f"127.0.0.1:{self.port}"
        self.server.start()

    @staticmethod
    def _service(request):
        if not request:
            return ""
        assert request[0] == 0x0A, request
        n, i, shift = 0, 1, 0
        while True:
            b = request[i]
            n |= (b & 0x7F) << shift
            i += 1
            shift += 7
            if not b & 0x80:
                break
        return request[i:i + n].decode()

    def stop(self):
        self.server.stop(0)


@needs_grpc
def test_grpc_health_check(gyrus_factory):
    s = GrpcHealth()
    try:
        hc = check(unhealthy=2, healthy=2, grpc_health_check={"service_name": "demo.Echo"})
        g = gyrus_factory(simple_mesh(free_port(), [s.port], cluster_extra={"health_checks": [hc]}), "test")
        wait_for(lambda: g.metric("gyrus_cluster_health_check_success_total", cluster=CLUSTER, host=s.addr) >= 2,
                 what="passing gRPC checks")
        assert s.services[0] == "demo.Echo"
        assert s.metadata[0].get("user-agent", "").startswith("gyrus-health-check")
        assert healthy(g, s.addr) == 1

        s.status = GrpcHealth.NOT_SERVING
        wait_health(g, s.addr, 0)
        assert "failed grpc checks in a row (status NOT_SERVING)" in g.output()
        s.status = GrpcHealth.SERVING
        wait_health(g, s.addr, 1)

        s.abort = grpc.StatusCode.UNAVAILABLE
        wait_health(g, s.addr, 0)
        assert "failed grpc checks in a row (grpc-status 14)" in g.output()
        s.abort = None
        wait_health(g, s.addr, 1)
    finally:
        s.stop()


@needs_grpc
def test_grpc_check_of_the_whole_server_and_of_an_http1_host(gyrus_factory, backends):
    s = GrpcHealth()
    h1 = backends("http1")
    try:
        hc = check(unhealthy=2, healthy=2, grpc_health_check={})
        g = gyrus_factory(simple_mesh(free_port(), [s.port, h1.port], cluster_extra={"health_checks": [hc]}), "test")
        wait_for(lambda: len(s.services) >= 2, what="gRPC checks")
        assert s.services[0] == ""
        assert healthy(g, s.addr) == 1
        wait_health(g, h1.addr, 0)  # an HTTP/1.1 server does not speak h2c
    finally:
        s.stop()


def test_grpc_check_authority(gyrus_factory):
    """grpc_health_check.authority is the check's :authority; unset, it is the cluster name."""
    from h2backend import H2Backend
    b = H2Backend("grpc-authority")
    try:
        hcs = [check(grpc_health_check={"authority": "health.svc.local:8443"}), check(grpc_health_check={})]
        gyrus_factory(simple_mesh(free_port(), [b.port], cluster_extra={"health_checks": hcs}), "test")

        def authorities():
            return {r.get(":authority") for r in list(b.requests) if r.get(":path") == "/grpc.health.v1.Health/Check"}
        wait_for(lambda: len(authorities()) == 2, what="checks with both authorities")
        assert authorities() == {"health.svc.local:8443", CLUSTER}
    finally:
        b.stop()


@needs_grpc
@pytest.mark.parametrize("reuse", [True, False])
def test_grpc_checks_reuse_their_session(gyrus_factory, reuse):
    """reuse_connection (the default): every gRPC check is a new call on one HTTP/2 session;
    false: a connection per check. A server that goes away and comes back costs the kept session,
    not a failure beyond the checks made while it was down."""
    s = GrpcHealth()
    try:
        hc = check(interval=100, grpc_health_check={"service_name": "demo.Echo"})
        if not reuse:
            hc["reuse_connection"] = False
        g = gyrus_factory(simple_mesh(free_port(), [s.port], cluster_extra={"health_checks": [hc]}), "test")
        wait_for(lambda: len(s.peers) >= 8, what="8 gRPC checks")
        peers = list(s.peers)
        if reuse:
            assert len(set(peers)) == 1, peers
        else:
            assert len(set(peers)) == len(peers), peers
        assert g.metric("gyrus_cluster_health_check_failure_total", cluster=CLUSTER) == 0
        assert s.services[-1] == "demo.Echo"
    finally:
        s.stop()
    if not reuse:
        return
    # the server restarts on the same port: the kept session is gone, the next one is new
    s2 = GrpcHealth(port=s.port)
    try:
        wait_for(lambda: len(s2.peers) >= 3, what="checks on a new session")
        assert len(set(s2.peers)) == 1
        wait_health(g, s2.addr, 1)
    finally:
        s2.stop()
