"""Routing on real requests: domains, paths, rules, weighted splits, rewrites, headers, redirects."""
import collections

import requests

from conftest import free_port, raw_request, status_of


def mesh(port, clusters, domains, routes, shared=()):
    objs = [
        {"kind": "listener", "listener_key": "l", "name": "l", "ip": "127.0.0.1", "port": port,
         "domain_keys": [d["domain_key"] for d in domains]},
        {"kind": "proxy", "proxy_key": "p", "name": "p", "listener_keys": ["l"]},
    ]
    objs += [{"kind": "domain", "port": port, **d} for d in domains]
    objs += [{"kind": "cluster", "cluster_key": k, "name": k,
              "instances": [{"host": "127.0.0.1", "port": p} for p in ports]} for k, ports in clusters.items()]
    objs += [{"kind": "shared_rules", **s} for s in shared]
    objs += [{"kind": "route", **r} for r in routes]
    return objs


def to(cluster, weight=1):
    return {"cluster_key": cluster, "weight": weight}


def rule(*light, **extra):
    return {"constraints": {"light": list(light)}, **extra}


def route(key, domain, path, *rules, match_type="prefix", **extra):
    return {"route_key": key, "domain_key": domain, "route_match": {"path": path, "match_type": match_type},
            "rules": list(rules), **extra}


def get(port, path, host="example.com", **kw):
    return requests.get(f"http://127.0.0.1:{port}{path}", headers={"Host": host, **kw.pop("headers", {})},
                        allow_redirects=False, timeout=5, **kw)


def test_domains_paths_and_rules(gyrus_factory, backend_factory):
    b = {n: backend_factory(n) for n in ("api", "web", "admin", "wild", "v2", "exact", "regex", "any")}
    port = free_port()
    domains = [
        {"domain_key": "example", "name": "example.com", "aliases": ["www.example.com"]},
        {"domain_key": "wild", "name": "*.example.org"},
        {"domain_key": "any", "name": "*"},
    ]
    routes = [
        route("web", "example", "/", rule(to("web"))),
        route("api", "example", "/api/", rule(to("v2"), headers_match := None) if False else
              rule(to("v2"), matches=[{"kind": "header", "behavior": "exact", "from": {"key": "x-version",
                                                                                        "value": "2"}}]),
              rule(to("v2"), matches=[{"kind": "cookie", "behavior": "exact", "from": {"key": "beta", "value": "1"}}]),
              rule(to("v2"), matches=[{"kind": "query", "behavior": "exact", "from": {"key": "v", "value": "2"}}]),
              rule(to("admin"), methods=["DELETE"]),
              rule(to("api"))),
        route("exact", "example", "/api/health", rule(to("exact")), match_type="exact"),
        route("regex", "example", "/items/[0-9]+", rule(to("regex")), match_type="regex"),
        route("wild", "wild", "/", rule(to("wild"))),
        route("any", "any", "/", rule(to("any"))),
    ]
    clusters = {n: [be.port] for n, be in b.items()}
    gyrus_factory(mesh(port, clusters, domains, routes), "p")

    def who(path, host="example.com", **kw):
        r = get(port, path, host, **kw)
        assert r.status_code == 200, (path, r.status_code, r.text)
        return r.headers["x-backend"]

    assert who("/") == "web"
    assert who("/", host="WWW.Example.COM:8080") == "web"  # alias, any case, port ignored
    assert who("/", host="a.b.example.org") == "wild"
    assert who("/", host="example.net") == "any"
    assert who("/api/x") == "api"
    assert who("/api/health") == "exact"
    assert who("/api/health/more") == "api"  # exact does not match a longer path
    assert who("/items/42") == "regex"
    assert who("/items/abc") == "web"
    assert who("/api/x", headers={"X-Version": "2"}) == "v2"
    assert who("/api/x", headers={"Cookie": "a=b; beta=1"}) == "v2"
    assert who("/api/x?v=2") == "v2"
    r = requests.delete(f"http://127.0.0.1:{port}/api/x", headers={"Host": "example.com"}, timeout=5)
    assert r.headers["x-backend"] == "admin"


def test_no_route_404_nr(gyrus_factory, backend_factory):
    be = backend_factory()
    port = free_port()
    g = gyrus_factory(mesh(port, {"c": [be.port]}, [{"domain_key": "d", "name": "only.example"}],
                           [route("r", "d", "/app/", rule(to("c")))]), "p")
    assert get(port, "/app/x", host="only.example").status_code == 200
    assert get(port, "/other", host="only.example").status_code == 404
    assert get(port, "/app/x", host="elsewhere").status_code == 404
    assert g.metric("gyrus_listener_downstream_rq_no_route_total", listener="l") == 2
    assert [e["response_flags"] for e in g.access_entries()][-2:] == ["NR", "NR"]


def test_weighted_split(gyrus_factory, backend_factory):
    a, b = backend_factory("a"), backend_factory("b")
    port = free_port()
    gyrus_factory(mesh(port, {"a": [a.port], "b": [b.port]}, [{"domain_key": "d", "name": "*"}],
                       [route("r", "d", "/", rule(to("a", 80), to("b", 20)))]), "p")
    counts = collections.Counter()
    with requests.Session() as s:
        for _ in range(2000):
            counts[s.get(f"http://127.0.0.1:{port}/", timeout=5).headers["x-backend"]] += 1
    # 80/20 of 2000: expect 400 for b, binomial sd ≈ 18; allow ±5 sd
    assert 310 < counts["b"] < 490, counts


def test_shared_rules_and_precedence(gyrus_factory, backend_factory):
    a, b, c = backend_factory("a"), backend_factory("b"), backend_factory("c")
    port = free_port()
    shared = [{"shared_rules_key": "s", "default": {"light": [to("c")]},
               "rules": [rule(to("b"), matches=[{"kind": "header", "behavior": "prefix",
                                                 "from": {"key": "x-team", "value": "blue"}}])]}]
    routes = [route("r", "d", "/", rule(to("a"), matches=[{"kind": "header", "behavior": "exact",
                                                           "from": {"key": "x-team", "value": "blue-a"}}]),
                    shared_rules_key="s")]
    gyrus_factory(mesh(port, {"a": [a.port], "b": [b.port], "c": [c.port]}, [{"domain_key": "d", "name": "*"}],
                       routes, shared), "p")
    assert get(port, "/", headers={"X-Team": "blue-a"}).headers["x-backend"] == "a"  # route rules first
    assert get(port, "/", headers={"X-Team": "blue-b"}).headers["x-backend"] == "b"  # then shared rules
    assert get(port, "/").headers["x-backend"] == "c"  # then the shared default


def test_prefix_rewrite_and_header_changes(gyrus_factory, backend_factory):
    be = backend_factory()
    port = free_port()
    routes = [route("r", "d", "/services/app/", rule(to("c")), prefix_rewrite="/",
                    request_headers_to_add=[{"key": "x-added", "value": "yes"}, {"key": "x-replaced", "value": "new"}],
                    request_headers_to_remove=["x-drop"],
                    response_headers_to_add=[{"key": "x-resp", "value": "r"}],
                    response_headers_to_remove=["x-backend"])]
    domains = [{"domain_key": "d", "name": "*", "custom_headers": [{"key": "x-domain", "value": "d"}]}]
    gyrus_factory(mesh(port, {"c": [be.port]}, domains, routes), "p")
    r = get(port, "/services/app/headers?q=1", headers={"X-Drop": "1", "X-Replaced": "old", "X-Keep": "k"})
    assert r.status_code == 200
    method, target, headers = be.requests[-1]
    assert target == "/headers?q=1"
    assert headers["x-added"] == "yes" and headers["x-replaced"] == "new" and headers["x-keep"] == "k"
    assert "x-drop" not in headers
    assert r.headers["x-resp"] == "r" and r.headers["x-domain"] == "d"
    assert "x-backend" not in r.headers


def test_redirects_and_direct_response(gyrus_factory, backend_factory):
    be = backend_factory()
    port = free_port()
    domains = [{"domain_key": "d", "name": "*",
                "redirects": [{"name": "old", "from": "^/old/(.*)$", "to": "/new/$1", "redirect_type": "permanent"}]},
               {"domain_key": "secure", "name": "secure.example", "force_https": True}]
    routes = [route("r", "d", "/", rule(to("c"))),
              route("t", "d", "/tmp", redirects=[{"name": "t", "from": "^/tmp$", "to": "/elsewhere",
                                                  "redirect_type": "temporary"}], match_type="exact"),
              route("direct", "d", "/health", direct_response={"status": 200, "body": "healthy\n"},
                    match_type="exact"),
              route("s", "secure", "/", rule(to("c")))]
    gyrus_factory(mesh(port, {"c": [be.port]}, domains, routes), "p")
    r = get(port, "/old/a/b")
    assert r.status_code == 301 and r.headers["location"] == "/new/a/b"
    r = get(port, "/tmp")
    assert r.status_code == 302 and r.headers["location"] == "/elsewhere"
    r = get(port, "/health")
    assert r.status_code == 200 and r.text == "healthy\n"
    r = get(port, "/x?y=1", host="secure.example")
    assert r.status_code == 301 and r.headers["location"] == "https://secure.example/x?y=1"
    out = raw_request(port, b"HEAD /health HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    assert status_of(out) == 200 and out.endswith(b"\r\n\r\n")
    assert be.requests == []


def test_round_robin_and_weights_across_hosts(gyrus_factory, backend_factory):
    bs = [backend_factory(f"h{i}") for i in range(3)]
    port = free_port()
    objs = mesh(port, {"c": [b.port for b in bs]}, [{"domain_key": "d", "name": "*"}], [route("r", "d", "/",
                                                                                                  rule(to("c")))])
    objs[3]["instances"][0]["weight"] = 2
    gyrus_factory(objs, "p")
    counts = collections.Counter()
    with requests.Session() as s:
        for _ in range(400):
            counts[s.get(f"http://127.0.0.1:{port}/", timeout=5).headers["x-backend"]] += 1
    assert counts == {"h0": 200, "h1": 100, "h2": 100}  # smooth weighted round robin is exact


def test_ring_hash_sticky_by_header(gyrus_factory, backend_factory):
    bs = [backend_factory(f"h{i}") for i in range(4)]
    port = free_port()
    objs = mesh(port, {"c": [b.port for b in bs]}, [{"domain_key": "d", "name": "*"}],
                [route("r", "d", "/", rule(to("c")), hash_policy=[{"header": {"header_name": "x-user"}}])])
    objs[3]["lb_policy"] = "ring_hash"
    gyrus_factory(objs, "p")
    seen = {}
    with requests.Session() as s:
        for user in range(40):
            hosts = {s.get(f"http://127.0.0.1:{port}/", headers={"x-user": f"u{user}"}, timeout=5).headers["x-backend"]
                     for _ in range(5)}
            assert len(hosts) == 1, f"user u{user} moved between {hosts}"
            seen[user] = hosts.pop()
    assert len(set(seen.values())) >= 3, "keys should spread over the hosts"


def test_least_request_prefers_idle_host(gyrus_factory, backend_factory):
    import threading
    slow, fast = backend_factory("slow"), backend_factory("fast")
    port = free_port()
    objs = mesh(port, {"c": [slow.port, fast.port]}, [{"domain_key": "d", "name": "*"}],
                [route("r", "d", "/", rule(to("c")))])
    objs[3]["lb_policy"] = "least_request"
    gyrus_factory(objs, "p")
    # Pin the slow host with a long request, then every quick request should go to the other one.
    hold = threading.Thread(target=lambda: requests.get(f"http://127.0.0.1:{port}/slow?s=2", timeout=10))
    hold.start()
    counts = collections.Counter()
    import time
    time.sleep(0.3)
    first = slow if slow.requests else fast
    other = fast if first is slow else slow
    for _ in range(30):
        counts[requests.get(f"http://127.0.0.1:{port}/", timeout=5).headers["x-backend"]] += 1
    hold.join()
    assert counts[other.name] == 30, counts
