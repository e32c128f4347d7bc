"""Mesh identity: the control plane's CA issues SPIFFE X.509-SVIDs on join tokens, proxies renew
them at half life with their current SVID, and keep the valid one while the CA is away."""
import base64
import os
import shutil
import subprocess
import tempfile

import pytest

from control_fixtures import control_factory, http, run_cli  # noqa: F401 (control_factory: a fixture)
from conftest import GYRUS, Process, free_port, simple_mesh, wait_for


def openssl(*args, input=None):
    out = subprocess.run(["openssl", *args], capture_output=True, input=input, timeout=30)
    assert out.returncode == 0, out.stderr.decode()
    return out.stdout


class IdentityProxy(Process):
    def __init__(self, control, name, zone, token=None, data_dir=None, extra=()):
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="gyrus-identity-")
        self.admin_port = free_port()
        args = [GYRUS, "proxy", "--control", control.url, "--name", name, "--zone", zone, "--data-dir",
                self.data_dir, "--workers", "1", "--admin", f"127.0.0.1:{self.admin_port}", *extra]
        if token:
            args += ["--join-token", token]
        super().__init__(args, f"proxy-{name}")

    def admin(self, path):
        return http("GET", f"http://127.0.0.1:{self.admin_port}{path}", timeout=5)

    def metric(self, name):
        status, text = self.admin("/metrics")
        for line in (text or "").splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        raise KeyError(name)

    def cert(self, name):
        return os.path.join(self.data_dir, f"svid-{name}.crt")


def token(control, *args):
    out = run_cli("token", "create", "--control", control.url, *args)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def setup_mesh(control, name="web"):
    port = free_port()
    control.apply(simple_mesh(port, [free_port()], name=name))
    return port


def test_join_token_gives_a_spiffe_svid(control_factory):
    control = control_factory(extra=["--trust-domain", "example.org"])
    setup_mesh(control)
    p = IdentityProxy(control, "web", "zone-a", token(control, "--service", "web"))
    try:
        wait_for(lambda: os.path.exists(p.cert("web")), 10, what="SVID on disk")
        text = openssl("x509", "-in", p.cert("web"), "-noout", "-text").decode()
        assert text.count("URI:") == 1 and "URI:spiffe://example.org/zone-a/web" in text
        assert "CA:FALSE" in text and "Digital Signature" in text
        assert "TLS Web Server Authentication" in text and "TLS Web Client Authentication" in text
        status, bundle = control.api("GET", "/v1.0/ca/bundle")
        assert status == 200 and bundle["result"]["trust_domain"] == "example.org"
        ca = os.path.join(p.data_dir, "ca.pem")
        with open(ca, "w") as f:
            f.write(bundle["result"]["bundle"])
        assert openssl("verify", "-CAfile", ca, p.cert("web")).strip().endswith(b"OK")
        wait_for(lambda: p.admin("/ready")[0] == 200, 10, what="proxy ready")
        certs = p.admin("/certs")[1]["svid"]
        assert certs["spiffe_id"] == "spiffe://example.org/zone-a/web"
        assert 3000 < certs["seconds_to_expiry"] <= 3600  # default TTL 1 h
        assert 3000 < p.metric("gyrus_svid_expiry_seconds") <= 3600
    finally:
        p.check_clean_exit()
        shutil.rmtree(p.data_dir, ignore_errors=True)


def test_renewal_at_half_life_with_the_svid_as_proof(control_factory):
    control = control_factory(extra=["--svid-ttl", "4s"])
    setup_mesh(control)
    p = IdentityProxy(control, "web", "z", token(control, "--service", "web", "--uses", "1"))
    try:
        wait_for(lambda: p.admin("/ready")[0] == 200, 10, what="proxy ready")
        # The token could be used once: every renewal after the first SVID proves itself with it.
        wait_for(lambda: p.metric("gyrus_svid_renewals_total") >= 5, 20, what="5 SVIDs")
        assert p.metric("gyrus_svid_renewal_failures_total") == 0
        assert p.metric("gyrus_svid_expiry_seconds") > 0
        assert control.output().count("(renewal)") >= 4
    finally:
        p.check_clean_exit()
        shutil.rmtree(p.data_dir, ignore_errors=True)


def test_refused_tokens(control_factory):
    control = control_factory()
    setup_mesh(control)
    for tok in ("gyt_nope", token(control, "--service", "other")):
        p = IdentityProxy(control, "web", "z", tok)
        try:
            wait_for(lambda: "cannot get an SVID" in p.output(), 10, what="refusal logged")
            assert not os.path.exists(p.cert("web"))
        finally:
            p.check_clean_exit()
            shutil.rmtree(p.data_dir, ignore_errors=True)
    assert "refused an SVID for spiffe://gyrus.local/z/web" in control.output()


def test_ca_api_errors(control_factory):
    control = control_factory()
    key = openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout")
    csr = openssl("req", "-new", "-key", "/dev/stdin", "-subj", "/CN=x", input=key).decode()
    assert control.api("POST", "/v1.0/ca/sign", {"csr": csr, "zone": "z", "service": "x"})[0] == 403
    assert control.api("POST", "/v1.0/ca/sign", {"csr": "garbage", "zone": "z", "service": "x",
                                                   "token": "t"})[0] == 400
    assert control.api("POST", "/v1.0/ca/sign", {"csr": csr, "zone": "z/../y", "service": "x", "token": "t"})[0] == 400
    assert control.api("GET", "/v1.0/ca/nothing")[0] == 404
    # A forged proof: a certificate from another CA.
    other = openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
                    "/dev/null", "-subj", "/CN=x", "-addext", "subjectAltName=URI:spiffe://gyrus.local/z/x",
                    "-days", "1").decode()
    sig = base64.b64encode(b"\x30" * 70).decode()
    status, body = control.api("POST", "/v1.0/ca/sign", {"csr": csr, "zone": "z", "service": "x",
                                                         "proof": {"certificate": other, "signature": sig}})
    assert status == 403 and "not a valid SVID of this mesh" in body["error"]["message"]


def csr_with(*keygen):
    """A CSR for a key made by `openssl genpkey` with these arguments."""
    key = openssl("genpkey", *keygen)
    return openssl("req", "-new", "-key", "/dev/stdin", "-subj", "/CN=x", input=key).decode()


def test_ca_fips_mode_signs_only_approved_keys(control_factory):
    plain, fips = control_factory(), control_factory(extra=["--fips", "on"])
    ed25519 = csr_with("-algorithm", "ed25519")
    rsa1024 = csr_with("-algorithm", "rsa", "-pkeyopt", "rsa_keygen_bits:1024")
    p521 = csr_with("-algorithm", "ec", "-pkeyopt", "ec_paramgen_curve:P-521")
    p256 = csr_with("-algorithm", "ec", "-pkeyopt", "ec_paramgen_curve:P-256")
    rsa2048 = csr_with("-algorithm", "rsa", "-pkeyopt", "rsa_keygen_bits:2048")

    def sign(control, csr):
        return control.api("POST", "/v1.0/ca/sign", {"csr": csr, "zone": "z", "service": "x",
                                                     "token": token(control, "--service", "x")})
    # without FIPS mode, any key the CSR proves it holds
    assert sign(plain, ed25519)[0] == 200
    for csr, why in ((ed25519, "Ed25519 keys are not allowed (RSA >= 2048 or ECDSA P-256/P-384)"),
                     (rsa1024, "RSA keys need at least 2048 bits (this one has 1024)"),
                     (p521, "ECDSA keys must be on P-256 or P-384 (this one is on secp521r1)")):
        status, body = sign(fips, csr)
        assert (status, body["error"]["message"]) == (400, "csr: FIPS mode: " + why), body
    for csr in (p256, rsa2048):
        status, body = sign(fips, csr)
        assert status == 200, body
        cert = body["result"]["certificate"]
        text = openssl("x509", "-noout", "-text", input=cert.encode()).decode()
        assert "Signature Algorithm: ecdsa-with-SHA256" in text


def test_control_fips_required_without_the_provider_refuses_to_start(tmp_path):
    from test_tls import fips_provider_available
    if fips_provider_available():
        pytest.skip("this machine has the OpenSSL FIPS provider")
    out = subprocess.run([GYRUS, "control", "--data-dir", str(tmp_path), "--listen", f"127.0.0.1:{free_port()}",
                          "--fips", "required"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 1
    assert out.stderr.startswith("control: error: --fips required: the OpenSSL FIPS provider cannot be loaded"), \
        out.stderr


def test_ca_survives_restart(control_factory, tmp_path):
    data = str(tmp_path / "control")
    c1 = control_factory(data_dir=data)
    b1 = c1.api("GET", "/v1.0/ca/bundle")[1]["result"]["bundle"]
    c1.stop()
    c2 = control_factory(data_dir=data)
    assert c2.api("GET", "/v1.0/ca/bundle")[1]["result"]["bundle"] == b1
    assert oct(os.stat(os.path.join(data, "ca", "root.key")).st_mode & 0o777) == "0o600"


def test_control_plane_down_keeps_the_valid_svid(control_factory):
    control = control_factory(extra=["--svid-ttl", "6s"])
    setup_mesh(control)
    p = IdentityProxy(control, "web", "z", token(control, "--service", "web"))
    try:
        wait_for(lambda: p.admin("/ready")[0] == 200, 10, what="proxy ready")
        control.stop()
        wait_for(lambda: p.metric("gyrus_svid_renewal_failures_total") >= 1, 15, what="failed renewal")
        assert p.admin("/ready")[0] == 200  # still serving
        assert "renewal failed" in p.output() and "the SVID stays valid for" in p.output()
        wait_for(lambda: p.metric("gyrus_svid_expiry_seconds") <= 0, 15, what="expiry")
        wait_for(lambda: "has EXPIRED" in p.output(), 15, what="loud expiry")
    finally:
        p.check_clean_exit()
        shutil.rmtree(p.data_dir, ignore_errors=True)


def sign_for(control, zone, service):
    key = openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout")
    csr = openssl("req", "-new", "-key", "/dev/stdin", "-subj", f"/CN={service}", input=key).decode()
    tok = token(control, "--service", service)
    status, body = control.api("POST", "/v1.0/ca/sign", {"csr": csr, "zone": zone, "service": service, "token": tok})
    assert status == 200, body


def view(control, name):
    status, body = control.api("GET", f"/v1.0/xds/{name}?wait=0")
    assert status == 200, body
    return {(o["kind"], o.get(f"{o['kind']}_key")): o for o in body["objects"]}


def test_views_turn_to_mtls_between_services_with_svids(control_factory, tmp_path):
    data = str(tmp_path / "control")
    control = control_factory(data_dir=data, extra=["--trust-domain", "mesh.test"])
    # edge → web (a meshed service: a proxy named "web"), web → its local app
    p1, p2 = free_port(), free_port()
    objs = [
        {"kind": "listener", "listener_key": "edge-in", "name": "edge-in", "ip": "127.0.0.1", "port": p1,
         "domain_keys": ["edge-in"]},
        {"kind": "domain", "domain_key": "edge-in", "name": "*", "port": p1},
        {"kind": "proxy", "proxy_key": "edge", "name": "edge", "listener_keys": ["edge-in"]},
        {"kind": "cluster", "cluster_key": "to-web", "name": "web"},
        {"kind": "route", "route_key": "edge-r", "domain_key": "edge-in", "route_match": {"path": "/"},
         "rules": [{"constraints": {"light": [{"cluster_key": "to-web"}]}}]},
        {"kind": "listener", "listener_key": "web-in", "name": "web-in", "ip": "127.0.0.1", "port": p2,
         "domain_keys": ["web-in"]},
        {"kind": "domain", "domain_key": "web-in", "name": "*", "port": p2},
        {"kind": "proxy", "proxy_key": "web", "name": "web", "listener_keys": ["web-in"]},
        {"kind": "cluster", "cluster_key": "web-app", "name": "web-app",
         "instances": [{"host": "127.0.0.1", "port": free_port()}]},
        {"kind": "route", "route_key": "web-r", "domain_key": "web-in", "route_match": {"path": "/"},
         "rules": [{"constraints": {"light": [{"cluster_key": "web-app"}]}}]},
    ]
    control.apply(objs)
    assert "secret" not in view(control, "edge")[("cluster", "to-web")]
    sign_for(control, "z1", "edge")
    assert "secret" not in view(control, "edge")[("cluster", "to-web")]  # web has no SVID yet
    sign_for(control, "z2", "web")
    edge, web = view(control, "edge"), view(control, "web")
    assert edge[("cluster", "to-web")]["secret"] == {
        "secret_name": "spiffe://mesh.test/z1/edge", "secret_validation_name": "spiffe://mesh.test",
        "subject_names": ["spiffe://mesh.test/z2/web"]}
    assert "secret" not in edge[("listener", "edge-in")]  # nobody calls the edge through the mesh
    assert web[("listener", "web-in")]["secret"] == {"secret_name": "spiffe://mesh.test/z2/web",
                                                     "secret_validation_name": "spiffe://mesh.test",
                                                     "forward_client_cert_details": "SANITIZE_SET",
                                                     "set_current_client_cert_details": {"uri": True}}
    assert "secret" not in web[("cluster", "web-app")]  # the local app is not a meshed service
    # The stored objects themselves are unchanged; a restart keeps the decoration.
    assert "secret" not in control.api("GET", "/v1.0/cluster/to-web")[1]["result"]
    control.stop()
    c2 = control_factory(data_dir=data, extra=["--trust-domain", "mesh.test"])
    assert "secret" in view(c2, "edge")[("cluster", "to-web")]
