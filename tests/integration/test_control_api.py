"""The mesh object API of `gyrus control`: CRUD, every error status with its cause, checksums,
referential integrity, batch apply, Grey Matter-shaped objects, persistence across restarts."""
import json
import random
import signal
import urllib.parse

from control_fixtures import Control, control, control_factory, http, small_mesh  # noqa: F401 (fixtures)


def test_crud_roundtrip(control):
    assert control.ok("GET", "/v1.0/cluster") == []
    created = control.ok("POST", "/v1.0/cluster", {"cluster_key": "a", "name": "a",
                                                   "instances": [{"host": "10.0.0.1", "port": 80}]})
    assert created["kind"] == "cluster" and created["cluster_key"] == "a"
    assert len(created["checksum"]) == 40
    got = control.ok("GET", "/v1.0/cluster/a")
    assert got == created
    # A replace with the checksum that was read succeeds and gives a new checksum.
    body = dict(got, lb_policy="least_request")
    replaced = control.ok("PUT", "/v1.0/cluster/a", body)
    assert replaced["lb_policy"] == "least_request" and replaced["checksum"] != got["checksum"]
    assert [c["cluster_key"] for c in control.ok("GET", "/v1.0/cluster")] == ["a"]
    deleted = control.ok("DELETE", "/v1.0/cluster/a")
    assert deleted == {"kind": "cluster", "key": "a"}
    assert control.api("GET", "/v1.0/cluster/a")[0] == 404


def test_checksum_is_content_hash(control):
    a = control.ok("POST", "/v1.0/zone", {"zone_key": "z1", "name": "one"})
    b = control.ok("POST", "/v1.0/zone", {"name": "one", "zone_key": "z2"})
    # Same content apart from the key: different checksums; same object written again: same.
    assert a["checksum"] != b["checksum"]
    again = control.ok("PUT", "/v1.0/zone/z1", {"name": "one", "checksum": a["checksum"]})
    assert again["checksum"] == a["checksum"]
    # The client's own checksum never sticks.
    c = control.ok("POST", "/v1.0/zone", {"zone_key": "z3", "checksum": "made-up"})
    assert c["checksum"] != "made-up"


def test_post_without_key_generates_one(control):
    z = control.ok("POST", "/v1.0/zone", {"name": "anonymous"})
    assert len(z["zone_key"]) == 16
    assert control.ok("GET", f"/v1.0/zone/{z['zone_key']}")["name"] == "anonymous"


def test_404s(control):
    cases = [
        ("GET", "/v1.0/cluster/nope", None, 'no cluster "nope"'),
        ("PUT", "/v1.0/cluster/nope", {"name": "x"}, 'no cluster "nope"'),
        ("DELETE", "/v1.0/route/nope", None, 'no route "nope"'),
        ("GET", "/v1.0/frobnicator", None, 'unknown kind "frobnicator"'),
        ("GET", "/nowhere", None, "no such endpoint"),
    ]
    for method, path, body, message in cases:
        status, out = control.api(method, path, body)
        assert status == 404, (method, path, status, out)
        assert out["error"]["code"] == 404 and message in out["error"]["message"], out


def test_400s_name_object_and_field(control):
    control.apply(small_mesh())
    cases = [
        ("POST", "/v1.0/route", {"route_key": "r2", "domain_key": "ingress", "route_match": {"path": "/x"},
                                 "rules": [{"constraints": {"light": [{"cluster_key": "pay", "weight": 1}]}}]},
         'route "r2": rules[0].constraints.light[0].cluster_key: no cluster "pay"',
         "rules[0].constraints.light[0].cluster_key"),
        ("POST", "/v1.0/cluster", {"cluster_key": "bad", "instances": [{"host": "h", "port": 0}]},
         'cluster "bad": instances[0].port: must be between 1 and 65535, got 0', "instances[0].port"),
        ("POST", "/v1.0/listener", {"listener_key": "l2", "port": 1, "protocol": "udp"},
         'listener "l2": protocol: must be one of http_auto, http, http2, tcp, got "udp"', "protocol"),
        ("POST", "/v1.0/domain", {"domain_key": "d2", "name": "*", "port": 1, "nmae": "x"},
         'domain "d2": unknown field "nmae"', ""),
        ("PUT", "/v1.0/zone/zone-1", {"zone_key": "other"},
         'zone "zone-1": zone_key: does not match the key in the URL', "zone_key"),
        ("POST", "/v1.0/zone", {"kind": "cluster", "zone_key": "z"}, "kind: the body is not a zone", "kind"),
        ("POST", "/v1.0/zone", "[1, 2]", "body: must be a JSON object (one zone)", ""),
        ("POST", "/v1.0/zone", "{not json", "body: 1:4: string or", ""),
        ("POST", "/v1.0/zone", {"zone_key": 7}, "zone object: zone_key: must be a non-empty string", "zone_key"),
        ("GET", "/v1.0/zone?filters=nope", None, "filters: want a JSON list", ""),
        ("GET", "/v1.0/xds/svc?wait=soon", None, 'wait: want a number of seconds, got "soon"', ""),
    ]
    for method, path, body, message, field in cases:
        status, out = control.api(method, path, body)
        assert status == 400, (path, body, status, out)
        assert out["error"]["code"] == 400
        assert out["error"]["message"].startswith(message), out
        assert out["error"].get("field", "") == field, out
    # Nothing of that reached the store.
    assert control.api("GET", "/v1.0/route/r2")[0] == 404


def test_409_duplicate_key(control):
    control.ok("POST", "/v1.0/zone", {"zone_key": "z"})
    status, out = control.api("POST", "/v1.0/zone", {"zone_key": "z", "name": "again"})
    assert status == 409 and out["error"]["message"] == 'zone "z" already exists'


def test_409_checksum_mismatch_put_and_delete(control):
    z = control.ok("POST", "/v1.0/zone", {"zone_key": "z", "name": "v1"})
    # Someone else changes it.
    control.ok("PUT", "/v1.0/zone/z", {"name": "v2"})
    # A write based on what we read is refused, naming the current checksum.
    status, out = control.api("PUT", "/v1.0/zone/z", {"name": "v3", "checksum": z["checksum"]})
    assert status == 409 and out["error"]["field"] == "checksum"
    assert out["error"]["message"].startswith('zone "z": checksum mismatch')
    status, out = control.api("DELETE", f"/v1.0/zone/z?checksum={z['checksum']}")
    assert status == 409 and "checksum mismatch" in out["error"]["message"]
    assert control.ok("GET", "/v1.0/zone/z")["name"] == "v2"
    # With the current checksum both work; without one the write is unconditional.
    cur = control.ok("GET", "/v1.0/zone/z")
    cur = control.ok("PUT", "/v1.0/zone/z", dict(cur, name="v4"))
    control.ok("PUT", "/v1.0/zone/z", {"name": "v5"})
    cur = control.ok("GET", "/v1.0/zone/z")
    control.ok("DELETE", f"/v1.0/zone/z?checksum={cur['checksum']}")


def test_referential_integrity_both_ways(control):
    control.apply(small_mesh())
    # Creating a reference to something missing: 400 naming the referring object.
    status, out = control.api("PUT", "/v1.0/shared_rules/svc-rules",
                              {"default": {"light": [{"cluster_key": "ghost", "weight": 1}]}, "zone_key": "zone-1"})
    assert status == 400
    assert out["error"]["message"] == 'shared_rules "svc-rules": default.light[0].cluster_key: no cluster "ghost"'
    # Deleting something still referred to: 409 naming who refers to it.
    status, out = control.api("DELETE", "/v1.0/cluster/svc")
    assert status == 409
    assert out["error"]["message"] == 'shared_rules "svc-rules": default.light[0].cluster_key: no cluster "svc"'
    assert out["error"]["field"] == "default.light[0].cluster_key"
    status, out = control.api("DELETE", "/v1.0/domain/ingress")
    assert status == 409 and out["error"]["message"].endswith('no domain "ingress"')
    status, out = control.api("DELETE", "/v1.0/zone/zone-1")
    assert status == 409 and 'no zone "zone-1"' in out["error"]["message"]
    # Deleting in dependency order works.
    for kind, key in [("proxy", "proxy"), ("route", "root"), ("shared_rules", "svc-rules"), ("cluster", "svc")]:
        control.ok("DELETE", f"/v1.0/{kind}/{key}")


def test_list_filters(control):
    control.apply([
        {"kind": "zone", "zone_key": "a"}, {"kind": "zone", "zone_key": "b"},
        {"kind": "cluster", "cluster_key": "c1", "name": "pay", "zone_key": "a"},
        {"kind": "cluster", "cluster_key": "c2", "name": "pay", "zone_key": "b"},
        {"kind": "cluster", "cluster_key": "c3", "name": "shop", "zone_key": "a", "require_tls": True},
    ])

    def keys(q):
        return [c["cluster_key"] for c in control.ok("GET", "/v1.0/cluster" + q)]
    assert keys("") == ["c1", "c2", "c3"]
    assert keys("?name=pay") == ["c1", "c2"]
    assert keys("?name=pay&zone_key=b") == ["c2"]
    assert keys("?require_tls=true") == ["c3"]
    assert keys("?name=nobody") == []
    f = json.dumps([{"name": "shop"}, {"zone_key": "b"}])
    assert keys("?filters=" + urllib.parse.quote(f)) == ["c2", "c3"]
    f = json.dumps([{"name": "pay", "zone_key": "a"}])
    assert keys("?filters=" + urllib.parse.quote(f)) == ["c1"]


def test_method_not_allowed(control):
    assert control.api("PATCH", "/v1.0/cluster")[0] == 405
    assert control.api("POST", "/v1.0/cluster/x", {})[0] == 405
    assert control.api("GET", "/v1.0/apply")[0] == 405


def test_apply_is_order_independent_and_atomic(control):
    mesh = small_mesh() + small_mesh(prefix="b-", port=10809)[1:]
    random.Random(7).shuffle(mesh)
    res = control.apply(mesh)
    assert res["created"] == len(mesh) and res["updated"] == 0
    random.Random(8).shuffle(mesh)
    assert control.apply(mesh)["unchanged"] == len(mesh)
    # One bad object: nothing of the batch lands.
    bad = [dict(o) for o in mesh]
    for o in bad:
        if o["kind"] == "cluster":
            o["lb_policy"] = "random"
    bad.append({"kind": "route", "route_key": "broken", "domain_key": "ingress", "route_match": {"path": "/b"},
                "rules": [{"constraints": {"light": [{"cluster_key": "pay", "weight": 1}]}}]})
    status, out = control.api("POST", "/v1.0/apply", bad)
    assert status == 400
    assert out["error"]["message"] == 'route "broken": rules[0].constraints.light[0].cluster_key: no cluster "pay"'
    assert all("lb_policy" not in c for c in control.ok("GET", "/v1.0/cluster"))
    # Duplicates inside one apply.
    status, out = control.api("POST", "/v1.0/apply", [{"kind": "zone", "zone_key": "q"}, {"kind": "zone", "zone_key": "q"}])
    assert status == 400 and out["error"]["message"] == 'zone "q": duplicate zone_key (also object 0)'


def test_apply_yaml_and_errors(control):
    yaml_text = "- kind: zone\n  zone_key: y1\n- {kind: zone, zone_key: y2, name: two}\n"
    res = control.ok("POST", "/v1.0/apply", yaml_text)
    assert res["created"] == 2
    status, out = control.api("POST", "/v1.0/apply", "- kind: zone\n  zone_key: [\n")
    assert status == 400 and out["error"]["message"].startswith("apply:")
    status, out = control.api("POST", "/v1.0/apply", [{"kind": "gizmo", "gizmo_key": "g"}])
    assert status == 400 and out["error"]["message"] == 'object 0: unknown kind "gizmo"'
    status, out = control.api("POST", "/v1.0/apply", [{"kind": "zone", "name": "nokey"}])
    assert status == 400 and out["error"]["message"] == 'object 0 (zone): missing required field zone_key'


def test_apply_prune(control):
    control.apply(small_mesh())
    keep = [o for o in small_mesh() if o["kind"] in ("zone", "cluster")]
    res = control.apply(keep, prune=True)
    assert res["deleted"] == 5 and res["unchanged"] == 2
    assert control.ok("GET", "/v1.0/route") == []


GREY_MATTER_MESH = [
    # Written the way Grey Matter 1.x's control API stores objects (helm chart bootstrap JSON):
    # nulls for absent fields, the 1.x route `path`, `active_proxy_filters`/`proxy_filters`,
    # checksums computed by Grey Matter, constraint fields of Turbine's model.
    {"kind": "zone", "zone_key": "default-zone", "name": "default-zone"},
    {"kind": "domain", "domain_key": "catalog", "zone_key": "default-zone", "name": "*", "port": 10808,
     "redirects": None, "gzip_enabled": False, "cors_config": None, "aliases": None, "ssl_config": None,
     "force_https": False, "custom_headers": None, "checksum": "f1d3ff8443297732862df21dc4e57262"},
    {"kind": "cluster", "cluster_key": "catalog-service", "zone_key": "default-zone", "name": "service",
     "secret": None, "instances": [{"host": "127.0.0.1", "port": 8080, "metadata": None}],
     "circuit_breakers": None, "outlier_detection": None, "health_checks": [], "ssl_config": None,
     "require_tls": False, "http2_protocol_options": None, "checksum": "7d81a9ac9ddb0b5a44c6b4d1fbb2e9a4"},
    {"kind": "listener", "listener_key": "catalog-listener", "zone_key": "default-zone", "name": "catalog",
     "ip": "0.0.0.0", "port": 10808, "protocol": "http_auto", "domain_keys": ["catalog"],
     "active_http_filters": ["gm.metrics"],
     "http_filters": {"gm_metrics": {"metrics_port": 8081, "metrics_host": "0.0.0.0",
                                     "metrics_dashboard_uri_path": "/metrics",
                                     "metrics_prometheus_uri_path": "/prometheus",
                                     "prometheus_system_metrics_interval_seconds": 15,
                                     "metrics_ring_buffer_size": 4096, "metrics_key_function": "depth"}},
     "secret": None, "http_protocol_options": None, "http2_protocol_options": None, "access_loggers": None},
    {"kind": "proxy", "proxy_key": "catalog-proxy", "zone_key": "default-zone", "name": "catalog",
     "domain_keys": ["catalog"], "listener_keys": ["catalog-listener"], "listeners": None,
     "active_proxy_filters": ["gm.metrics"], "proxy_filters": {"gm_metrics": {"metrics_port": 8081}},
     "upgrades": "", "checksum": ""},
    {"kind": "shared_rules", "shared_rules_key": "catalog-shared-rules", "name": "catalog",
     "zone_key": "default-zone",
     "default": {"light": [{"constraint_key": "", "cluster_key": "catalog-service", "metadata": None,
                            "properties": None, "response_data": {}, "weight": 1}],
                 "dark": None, "tap": None},
     "rules": None, "response_data": {}, "cohort_seed": None, "properties": None, "retry_policy": None},
    {"kind": "route", "route_key": "catalog-route", "domain_key": "catalog", "zone_key": "default-zone",
     "path": "/", "prefix_rewrite": "", "redirects": None, "shared_rules_key": "catalog-shared-rules",
     "rules": None, "response_data": {}, "cohort_seed": None, "retry_policy": None},
]


def test_grey_matter_objects_load_unchanged(control):
    # Created the way Grey Matter's bootstrap does it: one POST per object, in its order
    # (domain → cluster → listener → proxy → shared_rules → route), bodies without "kind".
    for o in GREY_MATTER_MESH:
        body = {k: v for k, v in o.items() if k != "kind"}
        stored = control.ok("POST", f"/v1.0/{o['kind']}", body)
        for k, v in body.items():
            if k != "checksum":
                assert stored[k] == v, (o["kind"], k)
    # And as one file, in any order, into another control plane's store.
    status, out = control.api("POST", "/v1.0/apply", list(reversed(GREY_MATTER_MESH)))
    assert status == 200 and out["result"]["unchanged"] == len(GREY_MATTER_MESH), out


def test_restart_keeps_the_mesh(control_factory, tmp_path):
    data = str(tmp_path / "data")
    c = control_factory(data_dir=data)
    c.apply(small_mesh())
    before = c.ok("GET", "/v1.0/cluster/svc")
    c.signal(signal.SIGTERM)
    assert c.proc.wait(timeout=20) == 0
    c2 = control_factory(data_dir=data)
    assert c2.ok("GET", "/v1.0/cluster/svc") == before
    assert len(c2.ok("GET", "/v1.0/route")) == 1
    # A second control plane on the same data dir is refused with one line.
    other = Control(data_dir=data, wait=False)
    assert other.proc.wait(timeout=20) == 1
    assert other.output().strip().endswith("is in use by another gyrus control (use --store etcd for several replicas)")
    other.stop()


def test_ready_metrics_version(control):
    control.apply(small_mesh())
    assert control.api("GET", "/ready") == (200, "ready\n")
    assert control.metric("gyrus_control_objects", kind="cluster") == 1
    assert control.metric("gyrus_control_objects", kind="route") == 1
    assert control.metric("gyrus_control_store_up", store="sqlite") == 1
    assert control.metric("gyrus_control_writes_total") == 1
    assert control.metric("process_resident_memory_bytes") > 0
    assert control.ok("GET", "/v1.0/version")["store"] == "sqlite"


def test_keepalive_and_pipelining(control):
    import socket
    with socket.create_connection(("127.0.0.1", control.port), timeout=5) as s:
        s.sendall(b"GET /ready HTTP/1.1\r\nHost: x\r\n\r\nGET /v1.0/zone HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while data.count(b"HTTP/1.1 200") < 2 or not data.endswith(b'{"result":[]}'):
            chunk = s.recv(4096)
            assert chunk, data
            data += chunk
        # A chunked body and a bad request on the same connection.
        s.sendall(b"POST /v1.0/zone HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                  b"10\r\n{\"zone_key\":\"ch\"\r\n1\r\n}\r\n0\r\n\r\n")
        data = b""
        while b'"zone_key":"ch"' not in data:
            chunk = s.recv(4096)
            assert chunk, data
            data += chunk
        assert data.startswith(b"HTTP/1.1 200")
        # HEAD: the head only, and the connection goes on.
        s.sendall(b"HEAD /ready HTTP/1.1\r\nHost: x\r\n\r\nGET /ready HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while not data.endswith(b"ready\n"):
            chunk = s.recv(4096)
            assert chunk, data
            data += chunk
        assert data.count(b"HTTP/1.1 200") == 2 and data.count(b"ready\n") == 1
        s.sendall(b"GET /ready HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        assert data.startswith(b"HTTP/1.1 400") and b"connection: close" in data
    assert control.alive()
