"""Zero trust between sidecars: two proxies under `gyrus control` get SVIDs from the mesh CA and
their traffic turns to mTLS by itself. Strangers (no certificate, another CA, an expired SVID)
are refused at the handshake, a mesh member with the wrong SPIFFE ID is refused by RBAC, user
identity headers a client sends are replaced, and SVIDs rotate every few seconds under load
without a failed request."""
import contextlib
import json
import os
import shutil
import threading
import time
import types

from conftest import free_port, http_get, wait_for
from control_fixtures import Control
from test_identity import IdentityProxy, openssl, token
from test_tls import pki, refused, request, tls_connect  # noqa: F401 (pki: a fixture)

TD = "mesh.test"
EDGE_ID, WEB_ID = f"spiffe://{TD}/z1/edge", f"spiffe://{TD}/z2/web"


def two_sidecars(p1, p2, backend_port, web_filters=None, edge_cluster_extra=None):
    """edge (listener p1) -> web (listener p2) -> the backend."""
    web_listener = {"kind": "listener", "listener_key": "web-in", "name": "web-in", "ip": "127.0.0.1", "port": p2,
                    "domain_keys": ["web-in"]}
    if web_filters:
        web_listener["active_http_filters"] = list(web_filters)
        web_listener["http_filters"] = web_filters
    return [
        {"kind": "listener", "listener_key": "edge-in", "name": "edge-in", "ip": "127.0.0.1", "port": p1,
         "domain_keys": ["edge-in"]},
        {"kind": "domain", "domain_key": "edge-in", "name": "*", "port": p1},
        {"kind": "proxy", "proxy_key": "edge", "name": "edge", "listener_keys": ["edge-in"]},
        {"kind": "cluster", "cluster_key": "to-web", "name": "web", "instances": [{"host": "127.0.0.1", "port": p2}],
         **(edge_cluster_extra or {})},
        {"kind": "route", "route_key": "edge-r", "domain_key": "edge-in", "route_match": {"path": "/"},
         "rules": [{"constraints": {"light": [{"cluster_key": "to-web", "weight": 1}]}}]},
        web_listener,
        {"kind": "domain", "domain_key": "web-in", "name": "*", "port": p2},
        {"kind": "proxy", "proxy_key": "web", "name": "web", "listener_keys": ["web-in"]},
        {"kind": "cluster", "cluster_key": "web-app", "name": "web-app",
         "instances": [{"host": "127.0.0.1", "port": backend_port}]},
        {"kind": "route", "route_key": "web-r", "domain_key": "web-in", "route_match": {"path": "/"},
         "rules": [{"constraints": {"light": [{"cluster_key": "web-app", "weight": 1}]}}]},
    ]


@contextlib.contextmanager
def mesh(objects, svid_ttl=None, access_log=None):
    """A control plane with the objects and the edge and web sidecars joined to it."""
    extra = ["--trust-domain", TD] + (["--svid-ttl", svid_ttl] if svid_ttl else [])
    control = Control(extra=extra)
    proxies = []
    try:
        control.apply(objects)
        for name, zone in (("web", "z2"), ("edge", "z1")):
            log = ["--access-log", access_log] if access_log and name == "web" else []
            proxies.append(IdentityProxy(control, name, zone, token(control, "--service", name), extra=log))
        web, edge = proxies
        wait_for(lambda: os.path.exists(web.cert("web")) and os.path.exists(edge.cert("edge")), 15, what="SVIDs")
        yield types.SimpleNamespace(control=control, web=web, edge=edge)
    finally:
        for p in proxies:
            print(f"---- {p.name}\n{p.output()[-4000:]}")  # shown when the test fails
            p.check_clean_exit()
            shutil.rmtree(p.data_dir, ignore_errors=True)
        control.check_clean_exit()


def svid_for(control, tmp, zone, service):
    """A certificate and key from the mesh CA, as a member `zone/service` would get them."""
    key = openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout")
    csr = openssl("req", "-new", "-key", "/dev/stdin", "-subj", f"/CN={service}", input=key).decode()
    status, body = control.api("POST", "/v1.0/ca/sign", {"csr": csr, "zone": zone, "service": service,
                                                         "token": token(control, "--service", service)})
    assert status == 200, body
    body = body.get("result", body)
    c = types.SimpleNamespace(cert=os.path.join(tmp, f"{service}.pem"), key=os.path.join(tmp, f"{service}.key"),
                              spiffe_id=body["spiffe_id"], bundle=body["bundle"])
    with open(c.cert, "w") as f:
        f.write(body["certificate"])
    with open(c.key, "wb") as f:
        f.write(key)
    return c


def mtls_up(p1, p2):
    """The views turned to mTLS: the web listener refuses plain HTTP, and edge -> web works."""
    def plain_refused():
        try:
            return http_get(f"http://127.0.0.1:{p2}/", timeout=3)[0] != 200
        except OSError:
            return True
    wait_for(plain_refused, 20, what="web listener speaks TLS")
    wait_for(lambda: http_get(f"http://127.0.0.1:{p1}/")[0] == 200, 20, what="edge -> web over mTLS")


RBAC_ONLY_EDGE = {"envoy.rbac": {"stat_prefix": "web", "rules": {"action": "ALLOW", "policies": {"edge-only": {
    "permissions": [{"any": True}],
    "principals": [{"authenticated": {"principal_name": {"exact": EDGE_ID}}}]}}}}}


def test_strangers_are_refused_and_the_right_caller_gets_through(backend_factory, pki, tmp_path):
    be = backend_factory()
    p1, p2 = free_port(), free_port()
    log = str(tmp_path / "web-access.log")
    with mesh(two_sidecars(p1, p2, be.port, web_filters=RBAC_ONLY_EDGE), svid_ttl="4s", access_log=log) as m:
        mtls_up(p1, p2)
        ca = str(tmp_path / "bundle.pem")
        intruder = svid_for(m.control, str(tmp_path), "z9", "intruder")
        with open(ca, "w") as f:
            f.write(intruder.bundle)
        # the web sidecar serves its SVID, shown on /certs with the files TLS loaded
        with contextlib.closing(tls_connect(p2, ca=ca, cert=intruder)) as s:
            sans = s.getpeercert().get("subjectAltName", ())
            assert ("URI", WEB_ID) in sans
        status, body = m.web.admin("/certs")
        assert body["svid"]["spiffe_id"] == WEB_ID
        assert any(c["path"] == m.web.cert("web") for c in body["certificates"])
        assert m.edge.metric('gyrus_tls_handshakes_total{cluster="web"}') >= 1
        # no certificate, another CA's: refused at the handshake
        assert refused(request(p2, ca=ca))
        assert refused(request(p2, ca=ca, cert=pki.client))
        # a member of the mesh, but not a caller the policy names: 403 from RBAC
        assert request(p2, ca=ca, cert=intruder) == 403
        # an SVID that has expired (4 s TTL): refused at the handshake
        expired = svid_for(m.control, str(tmp_path), "z1", "edge")
        time.sleep(5.5)
        assert refused(request(p2, ca=ca, cert=expired))
        # the edge sidecar, with its own (rotating) SVID, gets through
        before = len(be.requests)
        assert http_get(f"http://127.0.0.1:{p1}/")[0] == 200
        assert len(be.requests) == before + 1
        assert m.web.metric("gyrus_svid_renewals_total") >= 2
        # the web sidecar's access log names who called: the edge's SPIFFE ID
        def entries():
            with open(log) as f:
                return [json.loads(line) for line in f if line.strip()]
        wait_for(lambda: any(e.get("downstream_peer_uri_san") == EDGE_ID for e in entries()), what="peer in the log")
        denied = [e for e in entries() if e["status"] == 403]
        assert denied and denied[0]["downstream_peer_uri_san"] == intruder.spiffe_id


def test_identity_headers_come_from_the_certificate(backend_factory, tmp_path):
    """gm.inheaders on the web sidecar: the caller's DN and SPIFFE-bearing certificate decide
    USER_DN; what a client puts in identity headers is replaced or dropped."""
    be = backend_factory()
    p1, p2 = free_port(), free_port()
    filters = {"gm.inheaders": {}, "gm.impersonation": {"servers": EDGE_ID}}
    with mesh(two_sidecars(p1, p2, be.port, web_filters=filters)) as m:
        mtls_up(p1, p2)
        ca = str(tmp_path / "bundle.pem")
        other = svid_for(m.control, str(tmp_path), "z3", "reports")
        with open(ca, "w") as f:
            f.write(other.bundle)

        def seen_by_backend(**kw):
            n = len(be.requests)
            with contextlib.closing(tls_connect(p2, ca=ca, cert=other)) as s:
                hdrs = "".join(f"{k}: {v}\r\n" for k, v in kw.items())
                s.sendall(f"GET /who HTTP/1.1\r\nHost: web\r\n{hdrs}\r\n".encode())
                status = int(s.recv(65536).split(b" ")[1])
            return status, (be.requests[n][2] if len(be.requests) > n else None)

        # spoofed SSL_CLIENT_S_DN / EXTERNAL_SYS_DN / X-Real-IP are replaced by what TLS proved
        status, h = seen_by_backend(SSL_CLIENT_S_DN="CN=admin", EXTERNAL_SYS_DN="CN=admin", **{"X-Real-IP": "10.9.9.9"})
        assert status == 200
        assert h["user_dn"] == h["ssl_client_s_dn"] and "CN=reports" in h["user_dn"]
        assert "external_sys_dn" not in h
        assert h["x-real-ip"] == "127.0.0.1"
        # the service learns its caller from x-forwarded-client-cert (set by the mesh's listener,
        # SANITIZE_SET with the URI): the client's own value is replaced
        status, h = seen_by_backend(**{"X-Forwarded-Client-Cert": f"By={WEB_ID};URI={EDGE_ID}"})
        assert status == 200
        xfcc = dict(kv.split("=", 1) for kv in h["x-forwarded-client-cert"].split(";"))
        assert xfcc["By"] == WEB_ID and xfcc["URI"] == other.spiffe_id and len(xfcc["Hash"]) == 64
        assert other.spiffe_id == f"spiffe://{TD}/z3/reports"
        # acting for a user without being a whitelisted server: 403, and the backend never sees it
        status, h = seen_by_backend(USER_DN="CN=alice")
        assert status == 403 and h is None
        # the edge is whitelisted by its SPIFFE ID: it may act for alice
        r = http_get(f"http://127.0.0.1:{p1}/who", headers={"USER_DN": "CN=alice"})
        assert r[0] == 200
        h = be.requests[-1][2]
        assert h["user_dn"] == "CN=alice" and "CN=edge" in h["external_sys_dn"]
        assert "Impersonation Successful -> USER_DN: CN=alice | EXTERNAL_SYS_DN: " + h["external_sys_dn"] in m.web.output()


def test_svids_rotate_under_load_without_a_failed_request(backend_factory):
    """20 renewals of both sidecars' SVIDs (6 s TTL, renewed every 3 s) while requests flow; every
    request opens a new mTLS connection from edge to web, so each handshake uses the SVIDs of
    the moment."""
    be = backend_factory()
    p1, p2 = free_port(), free_port()
    no_pool = {"max_idle_connections_per_host": 0}
    with mesh(two_sidecars(p1, p2, be.port, edge_cluster_extra=no_pool), svid_ttl="6s") as m:
        mtls_up(p1, p2)
        r0 = (m.web.metric("gyrus_svid_renewals_total"), m.edge.metric("gyrus_svid_renewals_total"))
        h0 = m.edge.metric('gyrus_tls_handshakes_total{cluster="web"}')
        results, stop = [], threading.Event()

        def load():
            deadline = time.monotonic() + 150
            while not stop.is_set() and time.monotonic() < deadline and len(results) < 200000:
                try:
                    results.append(http_get(f"http://127.0.0.1:{p1}/", timeout=10)[0])
                except OSError as e:
                    results.append(repr(e))
        t = threading.Thread(target=load)
        t.start()
        try:
            wait_for(lambda: m.web.metric("gyrus_svid_renewals_total") >= r0[0] + 20
                     and m.edge.metric("gyrus_svid_renewals_total") >= r0[1] + 20, 140, interval=0.5,
                     what="20 rotations of both SVIDs")
        finally:
            stop.set()
            t.join()
        failed = [r for r in results if r != 200]
        print(f"{len(results)} requests through edge -> web during 20 rotations, {len(failed)} failed")
        assert len(results) > 100, len(results)
        assert not failed, f"{len(failed)} of {len(results)} failed: {failed[:5]}"
        # every request was a new handshake between the sidecars
        assert m.edge.metric('gyrus_tls_handshakes_total{cluster="web"}') - h0 >= len(results)
        assert m.web.metric("gyrus_svid_renewal_failures_total") == 0
