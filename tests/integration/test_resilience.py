"""Retries, timeouts, circuit breakers, shadows, taps and sticky splits against misbehaving backends."""
import collections
import hashlib
import json
import subprocess
import threading
import time

import requests

from conftest import free_port, simple_mesh, wait_for


def retry_mesh(port, backends, policy, cluster_extra=None, route_extra=None):
    return simple_mesh(port, backends, cluster_extra=cluster_extra,
                       route_extra={"retry_policy": policy, **(route_extra or {})})


def get(port, path="/x", **kw):
    return requests.get(f"http://127.0.0.1:{port}{path}", timeout=kw.pop("timeout", 10), **kw)


def entries_for(g, path):
    wait_for(lambda: any(e["path"] == path for e in g.access_entries()), 5, what=f"log of {path}")
    return [e for e in g.access_entries() if e["path"] == path]


def test_retry_on_5xx_until_success(gyrus_factory, backend_factory):
    be = backend_factory()
    be.script = ["status:503", "status:503"]
    port = free_port()
    g = gyrus_factory(retry_mesh(port, [be.port], {"num_retries": 3, "retry_on": "5xx",
                                                   "retry_back_off": {"base_interval": "10ms"}}), "test")
    r = get(port, "/a")
    assert r.status_code == 200
    assert len(be.requests) == 3
    assert g.metric("gyrus_cluster_upstream_rq_retry_total", cluster="backend") == 2
    assert g.metric("gyrus_cluster_upstream_rq_retry_success_total", cluster="backend") == 1
    assert entries_for(g, "/a")[-1]["upstream_attempts"] == 3


def test_retries_exhausted_pass_last_answer(gyrus_factory, backend_factory):
    be = backend_factory()
    be.default_action = "status:503"
    port = free_port()
    g = gyrus_factory(retry_mesh(port, [be.port], {"num_retries": 2, "retry_on": "gateway-error",
                                                   "retry_back_off": {"base_interval": "5ms"}}), "test")
    r = get(port, "/b")
    assert r.status_code == 503 and r.text == "scripted\n"
    assert len(be.requests) == 3  # the first attempt and exactly two retries
    e = entries_for(g, "/b")[-1]
    assert e["upstream_attempts"] == 3 and "URX" in e["response_flags"]


def test_not_retried_without_matching_condition(gyrus_factory, backend_factory):
    be = backend_factory()
    be.default_action = "status:500"
    port = free_port()
    gyrus_factory(retry_mesh(port, [be.port], {"num_retries": 3, "retry_on": "gateway-error"}), "test")
    assert get(port).status_code == 500
    assert len(be.requests) == 1
    be.requests.clear()
    be.default_action = "status:409"
    assert get(port).status_code == 409
    assert len(be.requests) == 1


def test_retriable_status_codes_and_4xx(gyrus_factory, backend_factory):
    be = backend_factory()
    be.script = ["status:409", "status:418"]
    port = free_port()
    gyrus_factory(retry_mesh(port, [be.port], {"num_retries": 3, "retry_on": "retriable-4xx,retriable-status-codes",
                                               "retriable_status_codes": [418],
                                               "retry_back_off": {"base_interval": "5ms"}}), "test")
    assert get(port).status_code == 200
    assert len(be.requests) == 3


def test_grpc_status_retry(gyrus_factory, backend_factory):
    be = backend_factory()
    be.script = ["grpc:14"]
    port = free_port()
    gyrus_factory(retry_mesh(port, [be.port], {"num_retries": 1, "retry_on": "unavailable",
                                               "retry_back_off": {"base_interval": "5ms"}}), "test")
    assert get(port).status_code == 200
    assert len(be.requests) == 2


def test_retry_prefers_another_host(gyrus_factory, backend_factory):
    bad, good = backend_factory("bad"), backend_factory("good")
    bad.default_action = "status:503"
    port = free_port()
    gyrus_factory(retry_mesh(port, [bad.port, good.port], {"num_retries": 1, "retry_on": "5xx",
                                                           "retry_back_off": {"base_interval": "5ms"}}), "test")
    with requests.Session() as s:
        for i in range(20):
            r = s.get(f"http://127.0.0.1:{port}/r{i}", timeout=10)
            assert r.status_code == 200 and r.headers["x-backend"] == "good"
    # Every request the bad host saw was retried on the good one, never on the bad one again.
    ids_bad = [h["x-request-id"] for _, _, h in bad.requests]
    assert len(ids_bad) == len(set(ids_bad))
    assert len(good.requests) == 20


def test_connect_failure_and_reset_are_retried(gyrus_factory, backend_factory):
    be = backend_factory()
    dead = free_port()
    port = free_port()
    g = gyrus_factory(retry_mesh(port, [dead, be.port], {"num_retries": 2, "retry_on": "connect-failure,reset",
                                                         "retry_back_off": {"base_interval": "5ms"}}), "test")
    for i in range(6):
        assert get(port, f"/c{i}").status_code == 200
    assert g.metric("gyrus_cluster_upstream_cx_connect_fail_total", cluster="backend") >= 1
    be.script = ["reset"]
    be.requests.clear()
    assert get(port, "/reset-once").status_code == 200
    assert [t for _, t, _ in be.requests] == ["/reset-once", "/reset-once"]


def test_per_try_timeout(gyrus_factory, backend_factory):
    be = backend_factory()
    be.script = ["delay:2"]
    port = free_port()
    gyrus_factory(retry_mesh(port, [be.port], {"num_retries": 1, "retry_on": "5xx", "per_try_timeout_msec": 300,
                                               "retry_back_off": {"base_interval": "5ms"}}), "test")
    t0 = time.monotonic()
    r = get(port, "/pt")
    elapsed = time.monotonic() - t0
    assert r.status_code == 200
    assert 0.3 <= elapsed < 1.5, elapsed
    assert len(be.requests) == 2
    # Both attempts time out: 504 after about two per-try timeouts.
    be.script = ["delay:2", "delay:2"]
    t0 = time.monotonic()
    r = get(port, "/pt2")
    assert r.status_code == 504
    assert 0.6 <= time.monotonic() - t0 < 1.9


def test_backoff_timing_windows(gyrus_factory, backend_factory):
    be = backend_factory()
    be.script = ["status:503"] * 3
    port = free_port()
    gyrus_factory(retry_mesh(port, [be.port], {"num_retries": 3, "retry_on": "5xx",
                                               "retry_back_off": {"base_interval": "100ms", "max_interval": "250ms"}}),
                  "test")
    assert get(port).status_code == 200
    gaps = [b - a for a, b in zip(be.times, be.times[1:])]
    # jittered in the upper half of base × 2^(n-1), capped at max: [50,100], [100,200], [125,250] ms
    windows = [(0.05, 0.10), (0.10, 0.20), (0.125, 0.25)]
    assert len(gaps) == 3
    for gap, (lo, hi) in zip(gaps, windows):
        assert lo - 0.005 <= gap <= hi + 0.15, (gaps, windows)


def test_request_body_is_replayed(gyrus_factory, backend_factory):
    be = backend_factory()
    be.script = ["status:503"]
    port = free_port()
    body = bytes(range(256)) * 40
    gyrus_factory(retry_mesh(port, [be.port], {"num_retries": 1, "retry_on": "5xx", "max_request_bytes": 20000,
                                               "retry_back_off": {"base_interval": "5ms"}}), "test")
    r = requests.post(f"http://127.0.0.1:{port}/sink", data=body, timeout=10)
    assert r.status_code == 200
    digest = hashlib.sha256(body).hexdigest()
    assert be.bodies == [(len(body), digest), (len(body), digest)]
    # chunked bodies too
    be.bodies.clear()
    be.script = ["status:503"]
    r = requests.post(f"http://127.0.0.1:{port}/sink", data=iter([body[:5000], body[5000:]]), timeout=10)
    assert r.status_code == 200 and be.bodies == [(len(body), digest), (len(body), digest)]
    # over the replay limit: no retry, the failure is passed on
    be.bodies.clear()
    be.script = ["status:503"]
    r = requests.post(f"http://127.0.0.1:{port}/sink", data=body * 3, timeout=10)
    assert r.status_code == 503 and len(be.bodies) == 1


def test_retry_budget_caps_retries(gyrus_factory, backend_factory):
    be = backend_factory()
    be.default_action = "first:0.5"  # each request fails once at once; its retry then takes 0.5 s
    port = free_port()
    g = gyrus_factory(retry_mesh(port, [be.port], {"num_retries": 3, "retry_on": "5xx",
                                                   "retry_back_off": {"base_interval": "1ms"}},
                                 cluster_extra={"retry_budget": {"budget_percent": 0, "min_retry_concurrency": 2}}),
                      "test")
    results = []
    threads = [threading.Thread(target=lambda: results.append(get(port).status_code)) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    overflow = g.metric("gyrus_cluster_upstream_rq_retry_overflow_total", cluster="backend")
    # Ten failures within a few ms, but only two retries may be in flight: eight answers are the 503s.
    assert sorted(results) == [200] * 2 + [503] * 8, (results, overflow)
    assert overflow == 8
    assert len(be.requests) == 12


def test_circuit_breaker_max_requests(gyrus_factory, backend_factory):
    be = backend_factory()
    be.default_action = "delay:1"
    port = free_port()
    g = gyrus_factory(simple_mesh(port, [be.port], cluster_extra={"circuit_breakers": {"max_requests": 5}}), "test")
    results = []
    lock = threading.Lock()

    def one():
        r = get(port)
        with lock:
            results.append((r.status_code, r.headers.get("x-gyrus-overloaded")))
    threads = [threading.Thread(target=one) for _ in range(20)]
    for t in threads:
        t.start()
    wait_for(lambda: len(be.requests) == 5, 5, what="5 requests in flight")
    remaining = g.metric("gyrus_cluster_circuit_breakers_remaining", cluster="backend", resource="requests")
    for t in threads:
        t.join()
    assert remaining == 0
    assert sorted(results, key=str) == sorted([(200, None)] * 5 + [(503, "true")] * 15, key=str)
    assert g.metric("gyrus_cluster_upstream_rq_overflow_total", cluster="backend") == 15
    assert g.metric("gyrus_cluster_circuit_breakers_remaining", cluster="backend", resource="requests") == 5
    assert sum("UO" in e["response_flags"] for e in g.access_entries()) == 15


def test_circuit_breaker_max_connections(gyrus_factory, backend_factory):
    be = backend_factory()
    be.default_action = "delay:1"
    port = free_port()
    g = gyrus_factory(simple_mesh(port, [be.port], cluster_extra={"circuit_breakers": {"max_connections": 3}}),
                      "test")
    results = []
    threads = [threading.Thread(target=lambda: results.append(get(port).status_code)) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [200] * 3 + [503] * 7
    assert be.connections == 3
    assert g.metric("gyrus_cluster_upstream_rq_overflow_total", cluster="backend") == 7


def split_mesh(port, light, dark=(), tap=(), cohort=None, extra_clusters=()):
    clusters = {}
    for c in list(light) + list(dark) + list(tap) + list(extra_clusters):
        clusters[c[0]] = c[1]
    objs = [
        {"kind": "listener", "listener_key": "l", "name": "l", "ip": "127.0.0.1", "port": port, "domain_keys": ["d"]},
        {"kind": "domain", "domain_key": "d", "name": "*", "port": port},
        {"kind": "proxy", "proxy_key": "p", "name": "p", "listener_keys": ["l"]},
    ]
    for name, spec in clusters.items():
        instances = spec if isinstance(spec, list) else [spec]
        objs.append({"kind": "cluster", "cluster_key": name, "name": name,
                     "instances": [i if isinstance(i, dict) else {"host": "127.0.0.1", "port": i} for i in instances]})
    constraints = {"light": [{"cluster_key": c[0], "weight": c[2] if len(c) > 2 else 1} for c in light]}
    if dark:
        constraints["dark"] = [{"cluster_key": c[0]} for c in dark]
    if tap:
        constraints["tap"] = [{"cluster_key": c[0]} for c in tap]
    rule = {"constraints": constraints}
    if cohort:
        rule["cohort_seed"] = cohort
    objs.append({"kind": "route", "route_key": "r", "domain_key": "d", "route_match": {"path": "/"}, "rules": [rule]})
    return objs


def http2_clusters(objs, *names):
    """Gives the named clusters of a mesh http2_protocol_options (HTTP/2, h2c without TLS)."""
    for o in objs:
        if o.get("kind") == "cluster" and o["name"] in names:
            o["http2_protocol_options"] = {}
    return objs


def test_canary_weights_over_10000_requests(gyrus_factory, backend_factory):
    stable, canary = backend_factory("stable"), backend_factory("canary")
    port = free_port()
    gyrus_factory(split_mesh(port, [("stable", stable.port, 90), ("canary", canary.port, 10)]), "p")
    counts = collections.Counter()
    with requests.Session() as s:
        for _ in range(10000):
            counts[s.get(f"http://127.0.0.1:{port}/", timeout=10).headers["x-backend"]] += 1
    # expect 1000 canary, sd = sqrt(10000 × 0.1 × 0.9) = 30; accept ±4 sd
    assert 880 <= counts["canary"] <= 1120, counts
    assert counts["stable"] + counts["canary"] == 10000


def test_cohort_seed_is_sticky(gyrus_factory, backend_factory):
    a, b = backend_factory("a"), backend_factory("b")
    port = free_port()
    gyrus_factory(split_mesh(port, [("a", a.port, 50), ("b", b.port, 50)],
                             cohort={"type": "header", "name": "x-user"}), "p")
    sides = {}
    with requests.Session() as s:
        for user in range(200):
            seen = {s.get(f"http://127.0.0.1:{port}/", headers={"x-user": f"user-{user}"}, timeout=10)
                    .headers["x-backend"] for _ in range(3)}
            assert len(seen) == 1, f"user-{user} moved: {seen}"
            sides[user] = seen.pop()
    share = sum(1 for v in sides.values() if v == "a") / len(sides)
    assert 0.35 < share < 0.65, share


def test_metadata_subsets(gyrus_factory, backend_factory):
    v1, v2 = backend_factory("v1"), backend_factory("v2")
    port = free_port()
    objs = split_mesh(port, [("svc", [{"host": "127.0.0.1", "port": v1.port, "metadata": [{"key": "version", "value": "v1"}]},
                                      {"host": "127.0.0.1", "port": v2.port, "metadata": [{"key": "version", "value": "v2"}]}])])
    objs[-1]["rules"][0]["constraints"]["light"][0]["metadata"] = [{"key": "version", "value": "v2"}]
    gyrus_factory(objs, "p")
    assert {get(port).headers["x-backend"] for _ in range(10)} == {"v2"}


def test_dark_traffic_is_mirrored_and_never_slows_the_caller(gyrus_factory, backend_factory):
    live, shadow = backend_factory("live"), backend_factory("shadow")
    shadow.default_action = "delay:2"
    port = free_port()
    g = gyrus_factory(split_mesh(port, [("live", live.port)], dark=[("shadow", shadow.port)]), "p")
    t0 = time.monotonic()
    r = requests.post(f"http://127.0.0.1:{port}/m?q=1", data=b"payload", timeout=10)
    assert time.monotonic() - t0 < 1.0, "the shadow's slowness leaked into the caller"
    assert r.status_code == 200 and r.headers["x-backend"] == "live"
    wait_for(lambda: len(shadow.requests) == 1, 5, what="shadow copy")
    method, target, headers = shadow.requests[0]
    assert (method, target) == ("POST", "/m?q=1") and headers["x-gyrus-shadow"] == "true"
    assert shadow.bodies == [(7, hashlib.sha256(b"payload").hexdigest())]
    assert g.metric("gyrus_cluster_upstream_rq_shadow_total", cluster="shadow") == 1
    # A dead shadow changes nothing for the caller either.
    shadow.stop()
    for _ in range(5):
        assert get(port).status_code == 200


def test_tap_receives_records(gyrus_factory, backend_factory):
    live, tap = backend_factory("live"), backend_factory("tap")
    port = free_port()
    gyrus_factory(split_mesh(port, [("live", live.port)], tap=[("tap", tap.port)]), "p")
    assert get(port, "/tapped", headers={"x-request-id": "tap-1"}).status_code == 200
    wait_for(lambda: len(tap.requests) == 1, 5, what="tap record")
    assert tap.requests[0][:2] == ("POST", "/")
    assert tap.requests[0][2]["content-type"] == "application/json"


def test_dark_and_tap_copies_to_h2c_clusters(gyrus_factory, backend_factory):
    """A dark or tap cluster that speaks HTTP/2 without TLS (h2c; a gRPC service, say) gets its
    copies over HTTP/2: the dark copy with the request's method, path, fields and body (sent
    chunked by the client, so the copy's length comes from its DATA frames), the tap record as a
    JSON POST."""
    from h2backend import H2Backend
    live = backend_factory("live")
    dark, tap = H2Backend("dark"), H2Backend("tap")
    try:
        port = free_port()
        objs = split_mesh(port, [("live", live.port)], dark=[("dark", dark.port)], tap=[("tap", tap.port)])
        g = gyrus_factory(http2_clusters(objs, "dark", "tap"), "p")

        def chunks():
            yield b"pay"
            yield b"load"
        r = requests.post(f"http://127.0.0.1:{port}/m?q=1", data=chunks(), headers={"X-Trace": "t1"}, timeout=10)
        assert r.status_code == 200 and r.headers["x-backend"] == "live"
        wait_for(lambda: len(dark.requests) == 1 and len(tap.requests) == 1, 5, what="copies over h2c")
        d = dark.requests[0]
        assert (d[":method"], d[":path"], d["x-gyrus-shadow"], d["x-trace"]) == ("POST", "/m?q=1", "true", "t1")
        assert "transfer-encoding" not in d and "connection" not in d
        assert dark.bodies == [(7, hashlib.sha256(b"payload").hexdigest())]
        t = tap.requests[0]
        assert (t[":method"], t[":path"], t["content-type"]) == ("POST", "/", "application/json")
        assert g.metric("gyrus_cluster_upstream_rq_shadow_total", cluster="dark") == 1
        assert g.metric("gyrus_cluster_upstream_rq_shadow_total", cluster="tap") == 1
    finally:
        dark.stop()
        tap.stop()


def test_h2_copies_share_a_session(gyrus_factory, backend_factory):
    """Copies to an h2c dark cluster, one after another, go as streams of one HTTP/2 session
    (parked between copies) rather than a connection each; a parked session unused for 5 s closes,
    and the next copy opens a new one."""
    from h2backend import H2Backend
    live, dark = backend_factory("live"), H2Backend("dark")
    try:
        port = free_port()
        objs = split_mesh(port, [("live", live.port)], dark=[("dark", dark.port)])
        g = gyrus_factory(http2_clusters(objs, "dark"), "p")
        with requests.Session() as s:
            for i in range(20):
                assert s.post(f"http://127.0.0.1:{port}/m{i}", data=b"x" * i, timeout=10).status_code == 200
                wait_for(lambda: len(dark.requests) == i + 1, 5, what=f"copy {i}")
                time.sleep(0.05)  # its answer reaches gyrus, which parks the session
        assert [r[":path"] for r in dark.requests] == [f"/m{i}" for i in range(20)]
        assert [b[0] for b in dark.bodies] == list(range(20))
        assert dark.connections <= 2  # one per copy before (20); 2 if an answer was slow once
        assert g.metric("gyrus_cluster_upstream_rq_shadow_total", cluster="dark") == 20
        n = dark.connections
        time.sleep(6)  # the parked session's idle time runs out
        assert requests.get(f"http://127.0.0.1:{port}/after", timeout=10).status_code == 200
        wait_for(lambda: len(dark.requests) == 21, 5, what="a copy after the idle close")
        assert dark.connections == n + 1
    finally:
        dark.stop()


def test_h2_copies_after_the_servers_goaway(gyrus_factory, backend_factory):
    """A parked session the server ended by GOAWAY (nginx after keepalive_requests) is not used
    again: every copy reaches the server, over a new session when needed, and none is dropped."""
    from conftest import Nginx
    live, dark = backend_factory("live"), Nginx(http2=True, keepalive_requests=3)
    try:
        asked, accepts = [0], [0]

        def served():  # requests nginx handled, less the status requests themselves
            out = subprocess.run(["curl", "-s", "--http2-prior-knowledge", f"http://127.0.0.1:{dark.port}/status"],
                                 capture_output=True, text=True, timeout=5).stdout.split()
            asked[0] += 1
            accepts[0] = int(out[out.index("requests") + 1]) - asked[0]  # each status request has its connection
            return int(out[out.index("requests") + 3]) - asked[0]
        port = free_port()
        objs = split_mesh(port, [("live", live.port)], dark=[("dark", dark.port)])
        g = gyrus_factory(http2_clusters(objs, "dark"), "p")
        before = served()
        connections = accepts[0]
        with requests.Session() as s:
            for i in range(12):
                assert s.get(f"http://127.0.0.1:{port}/c{i}", timeout=10).status_code == 200
                wait_for(lambda: served() == before + i + 1, 5, what=f"copy {i}")
                time.sleep(0.05)
        assert accepts[0] - connections >= 4  # a GOAWAY after every 3 requests
        assert g.metric("gyrus_cluster_upstream_rq_shadow_total", cluster="dark") == 12
        assert g.metric("gyrus_cluster_upstream_rq_shadow_dropped_total", cluster="dark") == 0
    finally:
        dark.stop()


def test_max_stream_duration(gyrus_factory, backend_factory):
    be = backend_factory()
    be.default_action = "delay:3"
    port = free_port()
    g = gyrus_factory(simple_mesh(port, [be.port], route_extra={"max_stream_duration": "300ms", "timeout": 0}), "test")
    t0 = time.monotonic()
    r = get(port, "/long")
    assert r.status_code == 504 and time.monotonic() - t0 < 2
    assert entries_for(g, "/long")[-1]["response_flags"] == "UT"
