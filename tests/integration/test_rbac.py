"""Access control on real requests: gyrus.rbac by address, path, method and headers (enforced and
shadow rules, metrics, audit lines), gm.listauth on USER_DN. Certificate-based principals and
the identity filters over mTLS are in test_identity_filters.py."""
import http.client
import subprocess

from conftest import GYRUS, free_port, to_yaml, wait_for
from test_filters import mesh


def call(port, method, path, source="127.0.0.1", headers=None, body=None):
    """One request from the source address; returns (status, body text)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source, 0))
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, r.read().decode()
    finally:
        c.close()


POLICY = {
    "stat_prefix": "ingress",
    "rules": {
        "action": "ALLOW",
        "policies": {
            "anyone-reads-public": {
                "permissions": [{"and_rules": {"rules": [{"url_path": {"path": {"prefix": "/public/"}}},
                                                         {"header": {"name": ":method", "exact_match": "GET"}}]}}],
                "principals": [{"any": True}],
            },
            "ops-host-does-anything": {
                "permissions": [{"any": True}],
                "principals": [{"source_ip": {"address_prefix": "127.0.0.2", "prefix_len": 32}}],
            },
            "tagged-callers": {
                "permissions": [{"not_rule": {"url_path": {"path": {"prefix": "/admin"}}}}],
                "principals": [{"header": {"name": "x-team", "safe_regex_match": {"regex": "blue|green"}}}],
            },
        },
    },
}


def test_rbac_allows_and_denies_real_requests(gyrus_factory, backend_factory):
    b = backend_factory()
    port = free_port()
    g = gyrus_factory(mesh(port, b, ["envoy.rbac"], {"envoy_rbac": POLICY}), "p", workers=2)

    cases = [
        # (method, path, source, headers, allowed)
        ("GET", "/public/a", "127.0.0.1", {}, True),
        ("POST", "/public/a", "127.0.0.1", {}, False),
        ("GET", "/private", "127.0.0.1", {}, False),
        ("GET", "/publicity", "127.0.0.1", {}, False),
        ("DELETE", "/private", "127.0.0.2", {}, True),
        ("GET", "/admin/x", "127.0.0.2", {}, True),
        ("GET", "/private", "127.0.0.3", {}, False),
        ("PUT", "/private", "127.0.0.1", {"X-Team": "green"}, True),
        ("PUT", "/admin/x", "127.0.0.1", {"X-Team": "green"}, False),
        ("PUT", "/private", "127.0.0.1", {"X-Team": "greenish"}, False),
    ]
    allowed = 0
    for method, path, source, headers, ok in cases:
        status, text = call(port, method, path, source, headers, body=b"x" if method in ("POST", "PUT") else None)
        if ok:
            assert status == 200, (method, path, source, headers, status, text)
            allowed += 1
        else:
            assert (status, text) == (403, "RBAC: access denied\n"), (method, path, source, headers)
    # denied requests never reach the backend
    assert len(b.requests) == allowed
    assert g.metric("gyrus_rbac_requests_total", stat_prefix="ingress", outcome="allowed") == allowed
    assert g.metric("gyrus_rbac_requests_total", stat_prefix="ingress", outcome="denied") == len(cases) - allowed
    # every denial leaves an audit line naming who and what
    wait_for(lambda: g.output().count("rbac: denied") == len(cases) - allowed, what="audit lines")
    assert "rbac: denied request_id=" in g.output()
    assert "peer=127.0.0.3 method=GET path=/private listener=ingress route=root policy=(none matched)" in g.output()
    denied_logged = [e for e in g.access_entries() if e["status"] == 403]
    assert len(denied_logged) == len(cases) - allowed


def test_rbac_deny_action_shadow_rules_and_route_override(gyrus_factory, backend_factory):
    b = backend_factory()
    port = free_port()
    deny = {"stat_prefix": "edge",
            "rules": {"action": "DENY", "policies": {"no-writes-from-3": {
                "permissions": [{"or_rules": {"rules": [{"method": "POST"}, {"method": "DELETE"}]}}],
                "principals": [{"remote_ip": {"address_prefix": "127.0.0.3"}}]}}},
            "shadow_rules": {"action": "ALLOW", "policies": {"only-1": {
                "permissions": [{"any": True}],
                "principals": [{"source_ip": {"address_prefix": "127.0.0.1", "prefix_len": 32}}]}}}}
    g = gyrus_factory(mesh(port, b, ["gyrus.rbac"], {"gyrus.rbac": deny},
                           routes=[("open", "/open/", {"gyrus_rbac": {"stat_prefix": "open"}})]), "p")
    assert call(port, "POST", "/x", "127.0.0.3", body=b"1")[0] == 403
    assert call(port, "DELETE", "/x", "127.0.0.3")[0] == 403
    assert call(port, "GET", "/x", "127.0.0.3")[0] == 200
    assert call(port, "POST", "/x", "127.0.0.4", body=b"1")[0] == 200
    assert call(port, "POST", "/x", "127.0.0.1", body=b"1")[0] == 200
    # the route's own config has no rules: nothing is enforced there, not even the listener's
    assert call(port, "POST", "/open/x", "127.0.0.3", body=b"1")[0] == 200
    # shadow rules would have refused everyone but 127.0.0.1 (on the listener's config), but refused nobody
    assert g.metric("gyrus_rbac_requests_total", stat_prefix="edge", outcome="shadow_denied") == 4
    assert g.metric("gyrus_rbac_requests_total", stat_prefix="edge", outcome="shadow_allowed") == 1
    assert g.metric("gyrus_rbac_requests_total", stat_prefix="edge", outcome="denied") == 2
    assert g.metric("gyrus_rbac_requests_total", stat_prefix="edge", outcome="allowed") == 3
    wait_for(lambda: g.output().count("rbac: shadow-denied") == 4, what="shadow audit lines")
    assert len(b.requests) == 4


def test_listauth_on_user_dn(gyrus_factory, backend_factory):
    b = backend_factory()
    port = free_port()
    g = gyrus_factory(mesh(port, b, ["gm.listauth"],
                           {"gm_listauth": {"whitelist": "CN=alice,O=Example|CN=bob,O=Example",
                                            "blacklist": "CN=bob,O=Example"}},
                           routes=[("staff", "/staff/", {"gm_listauth": {"denylist": ["CN=mallory"]}})]), "p")
    assert call(port, "GET", "/x", headers={"USER_DN": "cn=alice, o=example"})[0] == 200
    assert call(port, "GET", "/x", headers={"USER_DN": "CN=bob,O=Example"}) == (403, "access denied\n")
    assert call(port, "GET", "/x", headers={"USER_DN": "CN=carol,O=Example"})[0] == 403
    assert call(port, "GET", "/x")[0] == 403
    assert call(port, "GET", "/staff/x", headers={"USER_DN": "CN=carol,O=Example"})[0] == 200
    assert call(port, "GET", "/staff/x", headers={"USER_DN": "CN=mallory"})[0] == 403
    assert len(b.requests) == 2
    assert g.output().count("listauth: refused") == 4


def test_bad_rbac_configs_are_refused_with_their_path(tmp_path, backend_factory):
    b = backend_factory()
    port = free_port()
    bad = [
        ({"rules": {"action": "LOG"}}, 'http_filters.envoy_rbac.rules.action: want ALLOW or DENY, got "LOG"'),
        ({"rules": {"policies": {"p": {"permissions": [{"any": True}]}}}},
         "http_filters.envoy_rbac.rules.policies.p.principals: want a non-empty list"),
        ({"rules": {"policies": {"p": {"permissions": [{"url_path": {"path": {"safe_regex": {"regex": "(("}}}}],
                                       "principals": [{"any": True}]}}}},
         'http_filters.envoy_rbac.rules.policies.p.permissions[0].url_path.path.safe_regex.regex: bad regex "(("'),
    ]
    for cfg, msg in bad:
        path = tmp_path / "mesh.yaml"
        path.write_text(to_yaml(mesh(port, b, ["envoy.rbac"], {"envoy_rbac": cfg})))
        out = subprocess.run([GYRUS, "validate", str(path), "--name", "p"], capture_output=True, text=True, timeout=30)
        assert out.returncode != 0
        assert out.stderr.strip() == f'validate: error: listener "ingress": {msg}', out.stderr
