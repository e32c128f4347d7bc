"""Hot reload without dropping anything, refusing bad configs, graceful drain on SIGTERM."""
import signal
import socket
import threading
import time

import requests

from conftest import free_port, raw_request, simple_mesh, status_of, wait_for


class Load:
    """Keep-alive clients sending requests until stopped; counts every outcome."""

    def __init__(self, port, clients=4, path="/x"):
        self.port, self.path = port, path
        self.ok = 0
        self.failures = []
        self.bodies = {}
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(clients)]
        for t in self.threads:
            t.start()

    def run(self):
        with requests.Session() as s:
            while not self.stop.is_set():
                try:
                    r = s.get(f"http://127.0.0.1:{self.port}{self.path}", timeout=10)
                    with self.lock:
                        if r.status_code == 200:
                            self.ok += 1
                            self.bodies[r.text] = self.bodies.get(r.text, 0) + 1
                        else:
                            self.failures.append(r.status_code)
                except requests.RequestException as e:
                    with self.lock:
                        self.failures.append(repr(e))

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(15)


def test_hot_reload_under_load_loses_nothing(gyrus_factory, backend_factory):
    a, b = backend_factory("a"), backend_factory("b")
    port = free_port()
    g = gyrus_factory(simple_mesh(port, [a.port]), "test", workers=2)
    load = Load(port)
    try:
        for i in range(6):  # switch the cluster back and forth under load
            time.sleep(0.4)
            target = b if i % 2 == 0 else a
            g.write_mesh(simple_mesh(port, [target.port]))
            want = float(i + 2)
            wait_for(lambda: g.generation() >= want, 10, what=f"generation {want}")
        time.sleep(0.5)
    finally:
        load.finish()
    assert load.failures == []
    assert load.ok > 50
    assert set(load.bodies) == {"ok a\n", "ok b\n"}
    assert g.metric("gyrus_config_reloads_total") == 6


def test_invalid_config_keeps_running_config(gyrus_factory, backend_factory):
    be = backend_factory()
    port = free_port()
    g = gyrus_factory(simple_mesh(port, [be.port]), "test")
    bad = simple_mesh(port, [be.port])
    bad[4]["rules"][0]["constraints"]["light"][0]["cluster_key"] = "nope"
    g.write_mesh(bad)
    wait_for(lambda: g.metric("gyrus_config_reload_failures_total") == 1, 10, what="refused reload")
    assert g.generation() == 1
    assert requests.get(f"http://127.0.0.1:{port}/still", timeout=5).status_code == 200
    assert 'no cluster "nope"' in g.output()
    # SIGHUP with the same bad file: refused again, still serving
    g.signal(signal.SIGHUP)
    wait_for(lambda: g.metric("gyrus_config_reload_failures_total") == 2, 10, what="second refusal")
    g.write_mesh(simple_mesh(port, [be.port], route_extra={"request_headers_to_add": [{"key": "x-v", "value": "2"}]}))
    wait_for(lambda: g.generation() == 2, 10, what="good config applied")
    assert be.requests[-1][1] == "/still"
    requests.get(f"http://127.0.0.1:{port}/new", timeout=5)
    assert be.requests[-1][2].get("x-v") == "2"


def test_reload_moves_listener_and_unbindable_listener_is_refused(gyrus_factory, backend_factory):
    be = backend_factory()
    p1, p2 = free_port(), free_port()
    g = gyrus_factory(simple_mesh(p1, [be.port]), "test")
    g.write_mesh(simple_mesh(p2, [be.port]))
    wait_for(lambda: g.generation() == 2, 10, what="listener moved")
    assert requests.get(f"http://127.0.0.1:{p2}/", timeout=5).status_code == 200
    wait_for(lambda: socket.socket().connect_ex(("127.0.0.1", p1)) != 0, 5, what="old listener closed")
    # A port someone else holds: refused as a whole, the running listener stays.
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        taken = blocker.getsockname()[1]
        g.write_mesh(simple_mesh(taken, [be.port]))
        wait_for(lambda: g.metric("gyrus_config_reload_failures_total") == 1, 10, what="refused bind")
    assert "cannot listen on 127.0.0.1:%d" % taken in g.output()
    assert requests.get(f"http://127.0.0.1:{p2}/", timeout=5).status_code == 200


def test_sighup_reload(gyrus_factory, backend_factory):
    be = backend_factory()
    port = free_port()
    g = gyrus_factory(simple_mesh(port, [be.port]), "test", extra=["--watch-interval", "0"])
    g.write_mesh(simple_mesh(port, [be.port], route_extra={"request_headers_to_add": [{"key": "x-v", "value": "3"}]}))
    time.sleep(0.5)
    assert g.generation() == 1  # no file watching
    g.signal(signal.SIGHUP)
    wait_for(lambda: g.generation() == 2, 10, what="SIGHUP reload")


def test_graceful_drain_finishes_in_flight(gyrus_factory, backend_factory):
    be = backend_factory()
    port = free_port()
    g = gyrus_factory(simple_mesh(port, [be.port]), "test", workers=2)
    results = []

    def slow():
        results.append(requests.get(f"http://127.0.0.1:{port}/slow?s=1.5", timeout=10).status_code)
    threads = [threading.Thread(target=slow) for _ in range(8)]
    for t in threads:
        t.start()
    wait_for(lambda: len(be.requests) == 8, 5, what="requests in flight")
    idle = socket.create_connection(("127.0.0.1", port))  # an idle keep-alive connection
    g.signal(signal.SIGTERM)
    wait_for(lambda: g.admin("/ready")[0] == 503, 5, what="not ready while draining")
    idle.settimeout(5)
    assert idle.recv(10) == b"", "idle connections are closed at once"
    with socket.socket() as late:  # no longer accepting
        assert late.connect_ex(("127.0.0.1", port)) != 0
    for t in threads:
        t.join(10)
    assert results == [200] * 8
    g.proc.wait(10)
    assert g.proc.returncode == 0
    assert "draining" in g.output()


def test_drain_time_limits_shutdown(gyrus_factory, backend_factory):
    be = backend_factory()
    port = free_port()
    g = gyrus_factory(simple_mesh(port, [be.port]), "test", extra=["--drain-time", "1s"])
    t = threading.Thread(target=lambda: raw_request(port, b"GET /hang?s=20 HTTP/1.1\r\nHost: x\r\n\r\n", 15))
    t.start()
    wait_for(lambda: len(be.requests) == 1, 5, what="hanging request")
    t0 = time.monotonic()
    g.signal(signal.SIGTERM)
    g.proc.wait(10)
    assert time.monotonic() - t0 < 5
    t.join(15)


def test_quitquitquit(gyrus_factory, backend_factory):
    be = backend_factory()
    port = free_port()
    g = gyrus_factory(simple_mesh(port, [be.port]), "test")
    assert g.admin("/quitquitquit")[0] == 405
    status = requests.post(f"http://127.0.0.1:{g.admin_port}/quitquitquit", timeout=5).status_code
    assert status == 200
    g.proc.wait(10)
    assert g.proc.returncode == 0
