"""Outlier detection: consecutive 5xx and gateway failures eject a host (its traffic moves to the
others), it returns after base_ejection_time, a second ejection lasts twice as long,
max_ejection_percent caps ejections (one host always may go), and success-rate sweeps eject a
host far below the others."""
import datetime
import http.server
import re
import threading
import time

import pytest

from conftest import free_port, http_get, simple_mesh, wait_for

CLUSTER = "backend"


class StatusBackend:
    """HTTP/1.1 backend answering every request with `status` (200 by default), or with
    `fail_status` for every `fail_every`-th request when that is set. Counts requests."""

    def __init__(self, name):
        self.name = name
        self.status = 200
        self.fail_every = 0
        self.fail_status = 500
        self.requests = 0
        self.lock = threading.Lock()
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):  # noqa: N802 - the stdlib's name
                with owner.lock:
                    owner.requests += 1
                    status = owner.status
                    if owner.fail_every and owner.requests % owner.fail_every == 0:
                        status = owner.fail_status
                body = f"{owner.name} {status}\n".encode()
                self.send_response(status)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.addr = f"127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def count(self):
        with self.lock:
            return self.requests

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def backends():
    made = []

    def make(n):
        for i in range(n):
            made.append(StatusBackend(f"b{len(made)}"))
        return made[-n:]
    yield make
    for b in made:
        b.stop()


def outlier(**kw):
    od = {"interval_msec": 60000, "base_ejection_time_msec": 1000, "max_ejection_percent": 50,
          "consecutive_5xx": 3, "consecutive_gateway_failure": 0}
    od.update(kw)
    return {"outlier_detection": od}


def healthy(g, addr):
    return g.metric("gyrus_cluster_host_healthy", cluster=CLUSTER, host=addr)


def ejections(g, addr):
    return g.metric("gyrus_cluster_outlier_ejections_total", cluster=CLUSTER, host=addr)


def active(g):
    return g.metric("gyrus_cluster_outlier_ejections_active", cluster=CLUSTER)


def get(port):
    return http_get(f"http://127.0.0.1:{port}/")[0]


def drive_until(port, pred, limit=200, what="condition"):
    """Sends requests one at a time until pred() holds."""
    for _ in range(limit):
        if pred():
            return
        get(port)
    wait_for(pred, timeout=2, what=what)


def log_time(line):
    """Seconds since the epoch of a log line's timestamp (2026-11-25T18:37:30.126Z)."""
    stamp = line.split(" ", 1)[0]
    return datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc).timestamp()


def ejection_spans(g, addr):
    """(ejected, returned) pairs of log times for the host, in order."""
    spans, start = [], None
    for line in g.output().splitlines():
        if f"host {addr} ejected for" in line:
            start = log_time(line)
        elif f"host {addr} returns to service" in line and start is not None:
            spans.append(log_time(line) - start)
            start = None
    return spans


def test_consecutive_5xx_ejects_and_time_doubles(gyrus_factory, backends):
    bad, b1, b2 = backends(3)
    bad.status = 500
    port = free_port()
    g = gyrus_factory(simple_mesh(port, [bad.port, b1.port, b2.port], cluster_extra=outlier()), "test")

    drive_until(port, lambda: ejections(g, bad.addr) == 1, what="first ejection")
    assert healthy(g, bad.addr) == 0 and active(g) == 1
    before = bad.count()
    statuses = [get(port) for _ in range(20)]
    assert statuses == [200] * 20
    assert bad.count() == before, "an ejected host got traffic"
    wait_for(lambda: healthy(g, bad.addr) == 1, what="the host to return")
    assert active(g) == 0

    # Still failing: ejected again, now for twice the base time.
    drive_until(port, lambda: ejections(g, bad.addr) == 2, what="second ejection")
    wait_for(lambda: healthy(g, bad.addr) == 1, what="the host to return again")
    first, second = ejection_spans(g, bad.addr)
    assert 0.99 <= first <= 1.3, first
    assert 1.99 <= second <= 2.3, second
    out = g.output()
    assert re.search(rf'host {re.escape(bad.addr)} ejected for 1000 ms \(consecutive 5xx; ejection multiplier 1\)', out)
    assert re.search(rf'host {re.escape(bad.addr)} ejected for 2000 ms \(consecutive 5xx; ejection multiplier 2\)', out)
    assert out.count(f"host {bad.addr} returns to service") == 2
    assert ejections(g, b1.addr) == 0 and ejections(g, b2.addr) == 0


def test_max_ejection_percent(gyrus_factory, backends):
    hosts = backends(4)
    for h in hosts:
        h.status = 500
    port = free_port()
    g = gyrus_factory(simple_mesh(port, [h.port for h in hosts], cluster_extra=outlier(base_ejection_time_msec=30000)),
                      "test")
    drive_until(port, lambda: active(g) == 2, what="two ejections")
    for _ in range(40):
        get(port)
    assert active(g) == 2, "more than max_ejection_percent of the hosts were ejected"
    assert sum(healthy(g, h.addr) for h in hosts) == 2
    assert "max_ejection_percent 50" in g.output()


def test_one_host_may_always_be_ejected(gyrus_factory, backends):
    bad, good = backends(2)
    bad.status = 500
    port = free_port()
    g = gyrus_factory(simple_mesh(port, [bad.port, good.port],
                                  cluster_extra=outlier(max_ejection_percent=10, base_ejection_time_msec=30000)), "test")
    drive_until(port, lambda: active(g) == 1, what="an ejection despite 10%")
    assert healthy(g, bad.addr) == 0
    good.status = 500
    for _ in range(20):
        get(port)
    assert active(g) == 1 and healthy(g, good.addr) == 1


def test_gateway_failures_and_dead_hosts(gyrus_factory, backends):
    gw, good = backends(2)
    gw.status = 503
    dead = free_port()
    port = free_port()
    extra = outlier(consecutive_5xx=0, consecutive_gateway_failure=3, enforcing_consecutive_gateway_failure=100,
                    max_ejection_percent=100, base_ejection_time_msec=30000)
    extra["common_lb_config"] = {"healthy_panic_threshold": {"value": 0}}  # one healthy host of three is enough
    g = gyrus_factory(simple_mesh(port, [gw.port, dead, good.port], cluster_extra=extra), "test")
    drive_until(port, lambda: active(g) == 2, what="gateway ejections")
    assert healthy(g, gw.addr) == 0
    assert healthy(g, f"127.0.0.1:{dead}") == 0
    assert healthy(g, good.addr) == 1
    assert [get(port) for _ in range(10)] == [200] * 10
    assert "consecutive gateway failures" in g.output()


def test_gateway_failures_not_enforced_by_default(gyrus_factory, backends):
    gw, good = backends(2)
    gw.status = 502
    port = free_port()
    extra = outlier(consecutive_5xx=0, consecutive_gateway_failure=2)  # enforcing defaults to 0
    g = gyrus_factory(simple_mesh(port, [gw.port, good.port], cluster_extra=extra), "test")
    for _ in range(30):
        get(port)
    assert active(g) == 0 and ejections(g, gw.addr) == 0


def test_success_rate_ejection(gyrus_factory, backends):
    hosts = backends(5)
    flaky = hosts[0]
    flaky.fail_every = 2  # half its answers are 500
    port = free_port()
    extra = outlier(consecutive_5xx=0, interval_msec=1000, success_rate_minimum_hosts=5,
                    success_rate_request_volume=10, success_rate_stdev_factor=1000, base_ejection_time_msec=30000)
    g = gyrus_factory(simple_mesh(port, [h.port for h in hosts], cluster_extra=extra), "test")
    deadline = time.monotonic() + 15
    while ejections(g, flaky.addr) == 0 and time.monotonic() < deadline:
        for _ in range(25):
            get(port)
    assert ejections(g, flaky.addr) == 1
    assert all(ejections(g, h.addr) == 0 for h in hosts[1:])
    assert re.search(rf"host {re.escape(flaky.addr)} ejected for 30000 ms \(success rate 5\d\.\d% below", g.output())


def test_reload_keeps_ejection_and_removal_releases(gyrus_factory, backends):
    bad, good = backends(2)
    bad.status = 500
    port = free_port()
    extra = outlier(base_ejection_time_msec=30000)
    g = gyrus_factory(simple_mesh(port, [bad.port, good.port], cluster_extra=extra), "test")
    drive_until(port, lambda: active(g) == 1, what="an ejection")
    gen = g.generation()
    # The cluster stays (with a new base time): its host stays ejected across the reload.
    g.write_mesh(simple_mesh(port, [bad.port, good.port], cluster_extra=outlier(base_ejection_time_msec=30001)))
    wait_for(lambda: g.generation() > gen, what="reload")
    assert healthy(g, bad.addr) == 0
    gen = g.generation()
    g.write_mesh(simple_mesh(port, [bad.port, good.port]))  # outlier_detection removed
    wait_for(lambda: g.generation() > gen, what="reload")
    assert healthy(g, bad.addr) == 1
    assert active(g) == 0
