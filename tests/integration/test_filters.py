"""HTTP filters on real requests: gyrus.fault (aborts, delays, header-gated and header-controlled
faults, route overrides) and gyrus.ratelimit (bursts, refills, per-header and per-IP buckets)."""
import http.client
import subprocess
import threading
import time

import pytest
import requests

from conftest import GYRUS, free_port, raw_request, simple_mesh, status_of, to_yaml, wait_for


def mesh(port, backend, filters, configs, routes=()):
    """simple_mesh with the listener's filters, plus extra routes: (key, path, filter_configs)."""
    objs = simple_mesh(port, [backend.port], name="p",
                       listener_extra={"active_http_filters": filters, "http_filters": configs})
    for key, path, fc in routes:
        objs.append({"kind": "route", "route_key": key, "domain_key": "ingress",
                     "route_match": {"path": path, "match_type": "prefix"},
                     "rules": [{"constraints": {"light": [{"cluster_key": "backend", "weight": 1}]}}],
                     **({"filter_configs": fc} if fc is not None else {})})
    return objs


def statuses(session, url, n, headers=None):
    out = []
    for _ in range(n):
        r = session.get(url, headers=headers or {}, timeout=10)
        out.append(r.status_code)
    return out


# ---- gyrus.fault ----

def test_fault_abort_percentages_and_route_overrides(gyrus_factory, backend_factory):
    b = backend_factory()
    port = free_port()
    g = gyrus_factory(mesh(port, b, ["gyrus.fault"], {"gyrus_fault": {"abort": {"http_status": 503, "percentage": 25}}},
                           routes=[("none", "/none/", {"gyrus_fault": {"abort": {"http_status": 503, "percentage": 0}}}),
                                   ("all", "/all/", {"gyrus.fault": {"abort": {"http_status": 502}}}),
                                   ("frac", "/frac/", {"envoy.fault": {"abort": {"http_status": 500,
                                                                                 "percentage": 2.5}}})]),
                      "p", workers=2)
    s = requests.Session()
    url = f"http://127.0.0.1:{port}"
    got = statuses(s, url + "/x", 2000)
    aborted = got.count(503)
    # 25% of 2000: mean 500, sd 19.4; allow 5 sd
    assert 403 <= aborted <= 597, aborted
    assert got.count(200) == 2000 - aborted
    assert len(b.requests) == 2000 - aborted  # aborted requests never reach the backend
    r = s.get(url + "/x")
    while r.status_code != 503:
        r = s.get(url + "/x")
    assert r.text == "fault filter abort\n"

    assert statuses(s, url + "/none/a", 300) == [200] * 300
    assert statuses(s, url + "/all/a", 300) == [502] * 300
    frac = statuses(s, url + "/frac/a", 2000).count(500)
    # 2.5% of 2000: mean 50, sd 7
    assert 18 <= frac <= 85, frac

    def all_logged():
        return len(g.access_entries()) >= 2000 + 1 + 300 * 2 + 2000
    wait_for(all_logged, what="access log lines")
    entries = g.access_entries()
    faulted = [e for e in entries if e["status"] in (500, 502, 503)]
    assert len(faulted) == aborted + 1 + 300 + frac
    assert all("FI" in e["response_flags"] for e in faulted)
    assert not any("FI" in e["response_flags"] for e in entries if e["status"] == 200)


def test_fault_delay_does_not_block_others(gyrus_factory, backend_factory):
    b = backend_factory()
    port = free_port()
    gyrus_factory(mesh(port, b, ["gyrus.fault"], {"gyrus_fault": {"delay": {"fixed_delay": "800ms"}}},
                       routes=[("fast", "/fast/", {"gyrus_fault": {}})]), "p", workers=1)
    url = f"http://127.0.0.1:{port}"
    result = {}

    def slow():
        t = time.monotonic()
        result["status"] = requests.get(url + "/slow", timeout=10).status_code
        result["elapsed"] = time.monotonic() - t

    th = threading.Thread(target=slow)
    th.start()
    time.sleep(0.1)
    fast = []
    for _ in range(5):  # while the slow one waits, on the same single worker
        t = time.monotonic()
        assert requests.get(url + "/fast/", timeout=10).status_code == 200
        fast.append(time.monotonic() - t)
    th.join()
    assert result["status"] == 200
    assert 0.8 <= result["elapsed"] < 3.0, result
    assert max(fast) < 0.5, fast
    assert sum(1 for m, t, h in b.requests if t == "/slow") == 1

    # on a keep-alive connection too
    s = requests.Session()
    for _ in range(2):
        t = time.monotonic()
        assert s.get(url + "/slow", timeout=10).status_code == 200
        assert 0.8 <= time.monotonic() - t < 3.0


def test_fault_header_gated(gyrus_factory, backend_factory):
    b = backend_factory()
    port = free_port()
    gyrus_factory(mesh(port, b, ["gyrus.fault"], {"gyrus_fault": {
        "abort": {"http_status": 503},
        "headers": [{"name": "x-fault", "exact_match": "1"}, {"name": "x-user", "prefix_match": "test-"}]}}), "p")
    s = requests.Session()
    url = f"http://127.0.0.1:{port}/"
    assert statuses(s, url, 20) == [200] * 20
    assert statuses(s, url, 20, {"X-Fault": "1", "X-User": "test-42"}) == [503] * 20
    assert statuses(s, url, 20, {"x-fault": "1"}) == [200] * 20
    assert statuses(s, url, 20, {"x-fault": "2", "x-user": "test-42"}) == [200] * 20
    assert statuses(s, url, 20, {"x-fault": "1", "x-user": "prod-1"}) == [200] * 20


def test_fault_envoy_headers(gyrus_factory, backend_factory):
    b = backend_factory()
    port = free_port()
    # listed without a config: header-controlled faults only
    gyrus_factory(mesh(port, b, ["envoy.filters.http.fault"], {},
                       routes=[("off", "/off/", {"gyrus_fault": {"header_faults": False}})]), "p")
    s = requests.Session()
    url = f"http://127.0.0.1:{port}"
    assert statuses(s, url + "/", 10) == [200] * 10
    assert statuses(s, url + "/", 10, {"x-envoy-fault-abort-request": "418"}) == [418] * 10
    assert statuses(s, url + "/", 10, {"x-envoy-fault-abort-request": "bogus"}) == [200] * 10
    assert statuses(s, url + "/", 10, {"x-envoy-fault-abort-request": "503",
                                       "x-envoy-fault-abort-request-percentage": "0"}) == [200] * 10
    half = statuses(s, url + "/", 400, {"x-envoy-fault-abort-request": "503",
                                        "x-envoy-fault-abort-request-percentage": "50"}).count(503)
    assert 130 <= half <= 270, half  # mean 200, sd 10
    assert statuses(s, url + "/off/", 10, {"x-envoy-fault-abort-request": "418"}) == [200] * 10

    t = time.monotonic()
    assert s.get(url + "/", headers={"x-envoy-fault-delay-request": "400"}).status_code == 200
    assert 0.4 <= time.monotonic() - t < 3.0
    t = time.monotonic()
    assert s.get(url + "/off/", headers={"x-envoy-fault-delay-request": "400"}).status_code == 200
    assert time.monotonic() - t < 0.35


def test_fault_grpc_abort(gyrus_factory, backend_factory):
    b = backend_factory()
    port = free_port()
    gyrus_factory(mesh(port, b, ["gyrus.fault"], {"gyrus_fault": {"abort": {"grpc_status": 14}}}), "p")
    out = raw_request(port, b"POST /pkg.Svc/Call HTTP/1.1\r\nHost: x\r\ncontent-type: application/grpc\r\n"
                            b"te: trailers\r\ncontent-length: 5\r\nconnection: close\r\n\r\n\0\0\0\0\0")
    assert status_of(out) == 200, out
    assert b"grpc-status: 14" in out.lower(), out
    assert len(b.requests) == 0


# ---- gyrus.ratelimit ----

def test_ratelimit_burst_and_refill(gyrus_factory, backend_factory):
    b = backend_factory()
    port = free_port()
    g = gyrus_factory(mesh(port, b, ["gyrus.ratelimit"],
                           {"gyrus_ratelimit": {"max_tokens": 5, "fill_interval": "3s"}}), "p", workers=4)
    url = f"http://127.0.0.1:{port}/"
    # new connections, spread over the four workers: they share the bucket
    got = [requests.get(url, headers={"connection": "close"}, timeout=10) for _ in range(20)]
    assert [r.status_code for r in got].count(200) == 5
    refused = [r for r in got if r.status_code != 200]
    assert len(refused) == 15 and all(r.status_code == 429 for r in refused)
    for r in refused:
        assert 1 <= int(r.headers["retry-after"]) <= 3
        assert r.headers["x-gyrus-ratelimited"] == "true"
        assert r.text == "local_rate_limited\n"
    assert len(b.requests) == 5
    time.sleep(3.2)
    s = requests.Session()
    assert statuses(s, url, 10).count(200) == 5
    wait_for(lambda: len(g.access_entries()) == 30, what="access log lines")
    assert sorted("FI" in e["response_flags"] for e in g.access_entries()) == [False] * 10 + [True] * 20


def test_ratelimit_per_header_and_route_override(gyrus_factory, backend_factory):
    b = backend_factory()
    port = free_port()
    gyrus_factory(mesh(port, b, ["gyrus.ratelimit"],
                       {"gyrus_ratelimit": {"max_tokens": 3, "fill_interval": "1h", "key": "header:x-api-key"}},
                       routes=[("strict", "/strict/", {"gyrus_ratelimit": {"max_tokens": 1, "fill_interval": "1h",
                                                                           "status": 503}}),
                               ("envoy", "/envoy/", {"envoy.filters.http.local_ratelimit": {
                                   "stat_prefix": "x",
                                   "token_bucket": {"max_tokens": 2, "tokens_per_fill": 1, "fill_interval": "1h"}}})]),
                  "p")
    s = requests.Session()
    url = f"http://127.0.0.1:{port}"
    assert statuses(s, url + "/", 5, {"x-api-key": "alice"}) == [200] * 3 + [429] * 2
    assert statuses(s, url + "/", 5, {"x-api-key": "bob"}) == [200] * 3 + [429] * 2
    assert statuses(s, url + "/", 5, {"x-api-key": "alice"}) == [429] * 5
    assert statuses(s, url + "/", 5) == [200] * 3 + [429] * 2  # no header: one shared bucket
    assert statuses(s, url + "/strict/", 3, {"x-api-key": "carol"}) == [200, 503, 503]
    assert statuses(s, url + "/envoy/", 3) == [200, 200, 429]
    r = s.get(url + "/", headers={"x-api-key": "alice"})
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 3000


def test_ratelimit_per_source_ip(gyrus_factory, backend_factory):
    b = backend_factory()
    port = free_port()
    gyrus_factory(mesh(port, b, ["gyrus.ratelimit"],
                       {"gyrus_ratelimit": {"max_tokens": 2, "fill_interval": "1h", "key": "source_ip"}}), "p")

    def from_ip(ip, n):
        out = []
        for _ in range(n):
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=5, source_address=(ip, 0))
            c.request("GET", "/")
            out.append(c.getresponse().status)
            c.close()
        return out

    assert from_ip("127.0.0.1", 4) == [200, 200, 429, 429]
    assert from_ip("127.0.0.2", 4) == [200, 200, 429, 429]
    assert from_ip("127.0.0.3", 1) == [200]


def test_ratelimit_grpc(gyrus_factory, backend_factory):
    b = backend_factory()
    port = free_port()
    gyrus_factory(mesh(port, b, ["gyrus.ratelimit"], {"gyrus_ratelimit": {"max_tokens": 1, "fill_interval": "1h"}}),
                  "p")
    req = (b"POST /pkg.Svc/Call HTTP/1.1\r\nHost: x\r\ncontent-type: application/grpc\r\n"
           b"content-length: 5\r\nconnection: close\r\n\r\n\0\0\0\0\0")
    assert status_of(raw_request(port, req)) == 200
    out = raw_request(port, req)
    assert status_of(out) == 200, out
    assert b"grpc-status: 8" in out.lower(), out
    assert len(b.requests) == 1


def test_unimplemented_grey_matter_filters_are_skipped(gyrus_factory, backend_factory):
    b = backend_factory()
    port = free_port()
    g = gyrus_factory(mesh(port, b, ["gm.metrics", "gyrus.ratelimit", "gm.observables"],
                           {"gm_metrics": {"metrics_port": 8081},
                            "gyrus_ratelimit": {"max_tokens": 1, "fill_interval": "1h"}}), "p")
    s = requests.Session()
    assert statuses(s, f"http://127.0.0.1:{port}/", 3) == [200, 429, 429]
    out = g.output()
    assert 'listener "ingress": filter gm.metrics is not implemented yet; skipped' in out
    assert 'listener "ingress": filter gm.observables is not implemented yet; skipped' in out


# ---- bad configurations ----

@pytest.mark.parametrize("filters,configs,route_fc,message", [
    (["gyrus.ratelimit"], {"gyrus_ratelimit": {"max_tokens": 5, "fill_interval": "soon"}}, None,
     'listener "ingress": http_filters.gyrus_ratelimit.fill_interval: must be a duration such as "250ms", "5s" or '
     '"1m30s", got "soon"'),
    (["gyrus.ratelimit"], {"gyrus_ratelimit": {"fill_interval": "1s"}}, None,
     'listener "ingress": http_filters.gyrus_ratelimit.max_tokens: required'),
    (["gyrus.ratelimit"], {}, None,
     'listener "ingress": http_filters.gyrus.ratelimit: needs a config: max_tokens and fill_interval are required'),
    (["gyrus.ratelimit"], {"gyrus_ratelimit": {"max_tokens": 5, "fill_interval": "1s", "key": "cookie:a"}}, None,
     'listener "ingress": http_filters.gyrus_ratelimit.key: must be route, source_ip, identity or header:NAME, got "cookie:a"'),
    (["gyrus.fault"], {"gyrus_fault": {"abort": {"http_status": 600}}}, None,
     'listener "ingress": http_filters.gyrus_fault.abort.http_status: must be between 200 and 599, got 600'),
    (["gyrus.fault"], {"gyrus_fault": {"delay": {"percentage": 5}}}, None,
     'listener "ingress": http_filters.gyrus_fault.delay: needs fixed_delay or fixed_delay_ms'),
    (["gyrus.fault"], {}, {"gyrus_fault": {"abort": {"http_status": 503, "percentage": 101}}},
     'route "root": filter_configs.gyrus_fault.abort.percentage: must be a percentage between 0 and 100, got 101'),
])
def test_bad_filter_config_refuses_to_start(tmp_path, filters, configs, route_fc, message):
    objs = simple_mesh(free_port(), [1], listener_extra={"active_http_filters": filters, "http_filters": configs},
                       route_extra={"filter_configs": route_fc} if route_fc is not None else None)
    path = tmp_path / "mesh.yaml"
    path.write_text(to_yaml(objs))
    out = subprocess.run([GYRUS, "proxy", "--config", str(path), "--name", "test", "--admin", "off"],
                         capture_output=True, timeout=10, text=True)
    assert out.returncode == 1
    assert out.stderr.strip() == f"proxy: error: {message}", out.stderr
