"""TLS: downstream (SNI, ALPN, versions, client certificates, CRL, resumption,
x-forwarded-client-cert), upstream (verification, SNI, mTLS), certificate reload from disk, config errors, FIPS mode, metrics and
/certs. Certificates are made here with the openssl command line."""
import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import tempfile
import time
import types

import pytest

from backend import Backend, _Handler, _Server
from conftest import GYRUS, free_port, wait_for
from h2backend import H2Backend

# ---- a small PKI made with `openssl req` / `openssl ca` ----

CA_CNF = """\
[ca]
default_ca = CA_default
[CA_default]
dir = {dir}
database = $dir/index.txt
new_certs_dir = $dir/newcerts
serial = $dir/serial
crlnumber = $dir/crlnumber
default_md = sha256
default_crl_days = 30
policy = policy_any
unique_subject = no
email_in_dn = no
[policy_any]
commonName = supplied
organizationName = optional
"""


def openssl(*args, stdin=None):
    r = subprocess.run(["openssl", *args], input=stdin, capture_output=True, timeout=60)
    if r.returncode != 0:
        raise AssertionError(f"openssl {' '.join(args)}: {r.stderr.decode()}")
    return r.stdout.decode()


def newkey_args(kind):
    if kind.startswith("rsa"):
        return ["-newkey", kind]
    return ["-newkey", "ec", "-pkeyopt", f"ec_paramgen_curve:{kind}"]


class PKI:
    def __init__(self, d):
        self.d = d
        self.ca = self.make_ca("ca", "gyrus test CA")
        self.other_ca = self.make_ca("other", "some other CA")

    def make_ca(self, name, cn):
        d = os.path.join(self.d, name)
        os.makedirs(os.path.join(d, "newcerts"))
        open(os.path.join(d, "index.txt"), "w").close()
        for f in ("serial", "crlnumber"):
            with open(os.path.join(d, f), "w") as fh:
                fh.write("1000\n")
        ca = types.SimpleNamespace(dir=d, key=os.path.join(d, "ca.key"), cert=os.path.join(d, "ca.pem"),
                                   cnf=os.path.join(d, "ca.cnf"))
        with open(ca.cnf, "w") as f:
            f.write(CA_CNF.format(dir=d))
        openssl("req", "-x509", *newkey_args("P-256"), "-nodes", "-keyout", ca.key, "-out", ca.cert, "-days", "3650",
                "-subj", f"/CN={cn}", "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        return ca

    def issue(self, name, cn, sans=(), client=False, ca=None, kind="P-256", dates=None, days=30):
        ca = ca or self.ca
        key, csr, cert, ext = (os.path.join(self.d, f"{name}.{x}") for x in ("key", "csr", "pem", "ext"))
        openssl("req", "-new", *newkey_args(kind), "-nodes", "-keyout", key, "-out", csr,
                "-subj", f"/CN={cn}/O=gyrus tests")
        with open(ext, "w") as f:
            f.write("basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
                    f"extendedKeyUsage={'clientAuth' if client else 'serverAuth'}\n")
            if sans:
                f.write("subjectAltName=" + ",".join(sans) + "\n")
        when = ["-startdate", dates[0], "-enddate", dates[1]] if dates else ["-days", str(days)]
        openssl("ca", "-batch", "-notext", "-config", ca.cnf, "-cert", ca.cert, "-keyfile", ca.key, "-in", csr,
                "-out", cert, "-extfile", ext, *when)
        return types.SimpleNamespace(cert=cert, key=key, cn=cn)

    def revoke(self, c, ca=None):
        ca = ca or self.ca
        openssl("ca", "-config", ca.cnf, "-cert", ca.cert, "-keyfile", ca.key, "-revoke", c.cert)

    def crl(self, ca=None):
        ca = ca or self.ca
        path = os.path.join(ca.dir, "crl.pem")
        openssl("ca", "-gencrl", "-config", ca.cnf, "-cert", ca.cert, "-keyfile", ca.key, "-out", path)
        return path


@pytest.fixture(scope="module")
def pki():
    d = tempfile.mkdtemp(prefix="gyrus-tls-pki-")
    p = PKI(d)
    p.default = p.issue("default", "default.test", ["DNS:localhost", "IP:127.0.0.1"])
    p.a = p.issue("a", "a.example.com", ["DNS:a.example.com"])
    p.b = p.issue("b", "b.example.com", ["DNS:b.example.com", "DNS:*.b.example.com"])
    p.backend = p.issue("backend", "backend.local", ["DNS:backend.local", "DNS:localhost", "IP:127.0.0.1"])
    p.client = p.issue("client", "client-good", ["URI:spiffe://example.org/ns/test/sa/client"], client=True)
    p.stranger = p.issue("stranger", "client-stranger", client=True, ca=p.other_ca)
    p.expired = p.issue("expired", "client-expired", client=True, dates=("20200101000000Z", "20200201000000Z"))
    p.revoked = p.issue("revoked", "client-revoked", client=True)
    p.revoke(p.revoked)
    p.crl_path = p.crl()
    p.proxy_client = p.issue("proxy-client", "gyrus-proxy", client=True)
    yield p
    shutil.rmtree(d, ignore_errors=True)


# ---- meshes and clients ----

def ckp(c):
    return {"certificate_path": c.cert, "key_path": c.key}


def tls_mesh(port, backend_port, listener_ssl=None, domains=(("any", "*", None),), cluster_extra=None,
             instance_host="127.0.0.1"):
    objs = [
        {"kind": "listener", "listener_key": "ingress", "name": "ingress", "ip": "127.0.0.1", "port": port,
         "protocol": "http_auto", "domain_keys": [d[0] for d in domains],
         **({"ssl_config": listener_ssl} if listener_ssl else {})},
        {"kind": "proxy", "proxy_key": "test", "name": "test", "listener_keys": ["ingress"]},
        {"kind": "cluster", "cluster_key": "backend", "name": "backend",
         "instances": [{"host": instance_host, "port": backend_port}], **(cluster_extra or {})},
    ]
    for key, name, dssl in domains:
        objs.append({"kind": "domain", "domain_key": key, "name": name, "port": port,
                     **({"ssl_config": dssl} if dssl else {})})
        objs.append({"kind": "route", "route_key": f"root-{key}", "domain_key": key,
                     "route_match": {"path": "/", "match_type": "prefix"},
                     "rules": [{"constraints": {"light": [{"cluster_key": "backend", "weight": 1}]}}]})
    return objs


def client_ctx(ca=None, cert=None, min_version=None, max_version=None, alpn=None, ciphers=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    if ca:
        ctx.load_verify_locations(ca)
    else:
        ctx.verify_mode = ssl.CERT_NONE
    if cert:
        ctx.load_cert_chain(cert.cert, cert.key)
    if min_version:
        ctx.minimum_version = min_version
    if max_version:
        ctx.maximum_version = max_version
    if alpn:
        ctx.set_alpn_protocols(alpn)
    if ciphers:
        ctx.set_ciphers(ciphers)
    return ctx


def tls_connect(port, sni=None, **kw):
    ctx = kw.pop("ctx", None) or client_ctx(**kw)
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        return ctx.wrap_socket(s, server_hostname=sni)
    except Exception:
        s.close()
        raise


def exchange(sock, host="localhost", path="/"):
    """One HTTP/1.1 request on an open socket: (status, headers, body)."""
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed after {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
    n = int(headers.get("content-length", "0"))
    while len(body) < n:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(lines[0].split()[1]), headers, body


def request(port, sni="localhost", host=None, **kw):
    """Status of GET / over a new TLS connection, or the exception that refused it."""
    try:
        with contextlib.closing(tls_connect(port, sni=sni, **kw)) as s:
            return exchange(s, host or sni or "localhost")[0]
    except (ssl.SSLError, ConnectionError, OSError) as e:
        return e


def peer_cn(sock):
    return dict(x[0] for x in sock.getpeercert()["subject"])["commonName"]


def refused(result):
    return isinstance(result, Exception)


# ---- a TLS backend (the test backend behind an SSL socket) ----

class _TLSServer(_Server):
    def get_request(self):
        sock, addr = super().get_request()
        return self.ssl_ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr


class _TLSHandler(_Handler):
    def handle(self):
        owner = self.server.owner
        try:
            self.request.settimeout(10)
            self.request.do_handshake()
            self.request.settimeout(None)
        except OSError as e:
            with owner.lock:
                owner.handshake_errors.append(str(e))
            return
        cert = self.request.getpeercert()
        with owner.lock:
            owner.alpn.append(self.request.selected_alpn_protocol())
            owner.client_cns.append(dict(x[0] for x in cert["subject"])["commonName"] if cert else None)
            owner.resumed.append(self.request.session_reused)
        super().handle()


class TLSBackend(Backend):
    def __init__(self, cert, client_ca=None, name="tls-backend"):  # noqa: super().__init__ would open a plain server
        self.name = name
        self.lock = __import__("threading").Lock()
        self.connections = 0
        self.requests, self.times, self.bodies, self.script = [], [], [], []
        self.default_action = None
        self.seen_ids = set()
        self.snis, self.alpn, self.client_cns, self.handshake_errors, self.resumed = [], [], [], [], []
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert.cert, cert.key)
        ctx.set_alpn_protocols(["http/1.1"])
        if client_ca:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(client_ca)
        ctx.sni_callback = lambda s, name, c: self.snis.append(name)
        self.server = _TLSServer(("127.0.0.1", 0), _TLSHandler)
        self.server.ssl_ctx = ctx
        self.server.owner = self
        self.port = self.server.server_address[1]
        self.thread = __import__("threading").Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()


@pytest.fixture
def tls_backend():
    started = []

    def make(*args, **kwargs):
        b = TLSBackend(*args, **kwargs)
        started.append(b)
        return b
    yield make
    for b in started:
        b.stop()


def fails(g, reason, listener="ingress"):
    try:
        return g.metric("gyrus_tls_handshake_failures_total", listener=listener, reason=reason)
    except KeyError:
        return 0


# ---- downstream ----

def test_sni_picks_the_domain_certificate(gyrus_factory, backend_factory, pki):
    be = backend_factory()
    port = free_port()
    g = gyrus_factory(tls_mesh(port, be.port, listener_ssl={"cert_key_pairs": [ckp(pki.default)]},
                               domains=(("a", "a.example.com", {"cert_key_pairs": [ckp(pki.a)]}),
                                        ("b", "*.b.example.com", {"cert_key_pairs": [ckp(pki.b)],
                                                                  "sni": ["b.example.com", "*.b.example.com"]}),
                                        ("any", "*", None))), "test")
    for sni, cn in (("a.example.com", "a.example.com"), ("b.example.com", "b.example.com"),
                    ("x.b.example.com", "b.example.com"), ("A.Example.COM", "a.example.com"),
                    ("unknown.example.org", "default.test"), (None, "default.test")):
        with contextlib.closing(tls_connect(port, sni=sni, ca=pki.ca.cert)) as s:
            assert peer_cn(s) == cn, sni
            status, headers, body = exchange(s, host=sni or "localhost")
            assert status == 200 and body == f"ok {be.name}\n".encode()
    # curl with the name resolved to the proxy: full verification, hostname included
    r = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", pki.ca.cert,
                        "--resolve", f"a.example.com:{port}:127.0.0.1", f"https://a.example.com:{port}/"],
                       capture_output=True, timeout=20)
    assert r.stdout == b"200", r.stderr
    assert g.metric("gyrus_tls_handshakes_total", listener="ingress") >= 7


def test_domain_ssl_config_alone_makes_the_listener_tls(gyrus_factory, backend_factory, pki):
    be = backend_factory()
    port = free_port()
    gyrus_factory(tls_mesh(port, be.port, domains=(("a", "a.example.com", {"cert_key_pairs": [ckp(pki.a)]}),
                                                   ("any", "*", {"cert_key_pairs": [ckp(pki.default)]}))), "test")
    with contextlib.closing(tls_connect(port, sni="a.example.com", ca=pki.ca.cert)) as s:
        assert peer_cn(s) == "a.example.com"
    with contextlib.closing(tls_connect(port, sni="other.test", ca=pki.ca.cert)) as s:
        assert peer_cn(s) == "default.test"  # the domain "*" is the default


def test_alpn_h2_and_http11(gyrus_factory, backend_factory, pki):
    be = backend_factory()
    port = free_port()
    gyrus_factory(tls_mesh(port, be.port, listener_ssl={"cert_key_pairs": [ckp(pki.default)]}), "test")
    with contextlib.closing(tls_connect(port, sni="localhost", alpn=["http/1.1"])) as s:
        assert s.selected_alpn_protocol() == "http/1.1"
        assert exchange(s)[0] == 200
    out = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", "localhost",
                          "-alpn", "h2,http/1.1"], input=b"", capture_output=True, timeout=20).stdout.decode("latin1")
    assert "ALPN protocol: h2" in out
    # h2 over TLS runs the same HTTP/2 code as prior knowledge
    r = subprocess.run(["curl", "-s", "-S", "--http2", "--cacert", pki.ca.cert, "--resolve", f"localhost:{port}:127.0.0.1",
                        "-w", "%{http_version}", f"https://localhost:{port}/x"], capture_output=True, timeout=20)
    assert r.stdout == b"ok backend\n2", r
    out = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-alpn", "spdy/3"],
                         input=b"", capture_output=True, timeout=20).stdout.decode("latin1")
    assert "No ALPN negotiated" in out and "Verify return code" in out  # no common protocol: no ALPN, no failure


def test_protocol_limits(gyrus_factory, backend_factory, pki):
    be = backend_factory()
    p12, p13 = free_port(), free_port()
    g12 = gyrus_factory(tls_mesh(p12, be.port, listener_ssl={"cert_key_pairs": [ckp(pki.default)],
                                                             "protocols": ["TLSv1_2"]}), "test")
    g13 = gyrus_factory(tls_mesh(p13, be.port, listener_ssl={"cert_key_pairs": [ckp(pki.default)],
                                                             "protocols": ["TLSv1_3"]}), "test")
    with contextlib.closing(tls_connect(p12, sni="localhost")) as s:
        assert s.version() == "TLSv1.2"
    assert refused(request(p12, min_version=ssl.TLSVersion.TLSv1_3))
    with contextlib.closing(tls_connect(p13, sni="localhost")) as s:
        assert s.version() == "TLSv1.3"
    assert refused(request(p13, max_version=ssl.TLSVersion.TLSv1_2))
    wait_for(lambda: fails(g12, "protocol_version") >= 1 and fails(g13, "protocol_version") >= 1,
             what="protocol_version failures counted")
    # openssl s_client agrees
    r = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{p12}", "-tls1_3"], input=b"",
                       capture_output=True, timeout=20)
    assert r.returncode != 0


def s_client_group(port, groups):
    """The key exchange group a default OpenSSL client offering `groups` gets, or None if refused."""
    out = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", "localhost",
                          "-groups", groups], input=b"", capture_output=True, timeout=20).stdout.decode("latin1")
    for line in out.splitlines():
        if line.startswith("Server Temp Key:") or line.startswith("Negotiated TLS1.3 group:"):
            return line.split(":", 1)[1].strip()
    return None


def test_ecdh_curves(gyrus_factory, backend_factory, pki):
    """ssl_config.ecdh_curves limits the key exchange groups (Envoy's ecdh_curves); a name OpenSSL
    does not know refuses the config with the field named."""
    be = backend_factory()
    port = free_port()
    gyrus_factory(tls_mesh(port, be.port, listener_ssl={"cert_key_pairs": [ckp(pki.default)],
                                                        "ecdh_curves": ["P-384"]}), "test")
    assert "secp384r1" in s_client_group(port, "P-384")
    assert s_client_group(port, "X25519") is None  # the client offers nothing the listener takes
    assert "secp384r1" in s_client_group(port, "X25519:P-384")
    rc, err = run_and_fail(tls_mesh(free_port(), 1, listener_ssl={"cert_key_pairs": [ckp(pki.default)],
                                                                  "ecdh_curves": ["P-999"]}))
    assert rc == 1 and "ssl_config.ecdh_curves: unknown group" in err, err


def ocsp_response(pki, c, tmp):
    """A DER OCSP response from the test CA (its openssl ca index) about certificate c."""
    req, resp = os.path.join(tmp, "req.der"), os.path.join(tmp, f"{os.path.basename(c.cert)}.ocsp")
    openssl("ocsp", "-issuer", pki.ca.cert, "-cert", c.cert, "-reqout", req, "-no_nonce")
    openssl("ocsp", "-index", os.path.join(pki.ca.dir, "index.txt"), "-rsigner", pki.ca.cert, "-rkey", pki.ca.key,
            "-CA", pki.ca.cert, "-reqin", req, "-respout", resp, "-ndays", "1")
    return resp


def with_chain(pki, c, tmp):
    """c's certificate followed by its issuer, as a certificate file with the chain."""
    path = os.path.join(tmp, os.path.basename(c.cert) + ".chain.pem")
    with open(path, "w") as out, open(c.cert) as leaf, open(pki.ca.cert) as ca:
        out.write(leaf.read() + ca.read())
    return {"certificate_path": path, "key_path": c.key}


def test_ocsp_stapling(gyrus_factory, backend_factory, pki, tmp_path):
    """ssl_config.ocsp_staple: the response goes to clients that ask (status_request); a response
    that is not OCSP, about another certificate, or saying "revoked" refuses the config."""
    be = backend_factory()
    port, tmp = free_port(), str(tmp_path)
    good = ocsp_response(pki, pki.default, tmp)
    gyrus_factory(tls_mesh(port, be.port, listener_ssl={"cert_key_pairs": [with_chain(pki, pki.default, tmp)],
                                                        "ocsp_staple": good}), "test")
    out = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", "localhost",
                          "-status"], input=b"", capture_output=True, timeout=20).stdout.decode("latin1")
    assert "OCSP Response Status: successful" in out and "Cert Status: good" in out, out[-2000:]
    assert request(port, ca=pki.ca.cert) == 200

    def refused_with(pair, staple, why):
        rc, err = run_and_fail(tls_mesh(free_port(), 1, listener_ssl={"cert_key_pairs": [pair], "ocsp_staple": staple}))
        assert rc == 1 and "ssl_config.ocsp_staple: " in err and why in err, err

    junk = os.path.join(tmp, "junk.der")
    with open(junk, "wb") as f:
        f.write(b"not an ocsp response")
    refused_with(with_chain(pki, pki.default, tmp), junk, "is not a DER OCSP response")
    refused_with(with_chain(pki, pki.a, tmp), good, "does not answer for this certificate")
    refused_with(with_chain(pki, pki.revoked, tmp), ocsp_response(pki, pki.revoked, tmp), "says the certificate is revoked")


def test_default_protocols_and_cipher_filter(gyrus_factory, backend_factory, pki):
    be = backend_factory()
    port = free_port()
    gyrus_factory(tls_mesh(port, be.port, listener_ssl={
        "cert_key_pairs": [ckp(pki.default)], "protocols": ["TLS_AUTO"],
        "cipher_filter": "[ECDHE-ECDSA-AES128-GCM-SHA256|ECDHE-ECDSA-CHACHA20-POLY1305]"}), "test")
    with contextlib.closing(tls_connect(port, sni="localhost", max_version=ssl.TLSVersion.TLSv1_2)) as s:
        assert s.cipher()[0] in ("ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-CHACHA20-POLY1305")
    assert refused(request(port, max_version=ssl.TLSVersion.TLSv1_2, ciphers="ECDHE-ECDSA-AES256-GCM-SHA384"))


def test_client_certificate_required(gyrus_factory, backend_factory, pki):
    be = backend_factory()
    port = free_port()
    g = gyrus_factory(tls_mesh(port, be.port, listener_ssl={
        "cert_key_pairs": [ckp(pki.default)], "trust_file": pki.ca.cert, "require_client_certs": True}), "test")
    assert request(port, cert=pki.client) == 200
    assert refused(request(port))                      # no certificate
    assert refused(request(port, cert=pki.stranger))   # another CA
    assert refused(request(port, cert=pki.expired))    # expired
    wait_for(lambda: fails(g, "no_client_certificate") >= 1 and fails(g, "certificate_verify_failed") >= 1
             and fails(g, "certificate_expired") >= 1, what="failures by reason")
    # curl: --cert works, no cert does not
    base = ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", pki.ca.cert, f"https://localhost:{port}/"]
    assert subprocess.run(base + ["--cert", pki.client.cert, "--key", pki.client.key], capture_output=True,
                          timeout=20).stdout == b"200"
    assert subprocess.run(base, capture_output=True, timeout=20).returncode != 0


def test_client_certificate_optional(gyrus_factory, backend_factory, pki):
    be = backend_factory()
    port = free_port()
    gyrus_factory(tls_mesh(port, be.port, listener_ssl={"cert_key_pairs": [ckp(pki.default)],
                                                        "trust_file": pki.ca.cert}), "test")
    assert request(port) == 200                        # none: fine
    assert request(port, cert=pki.client) == 200       # a good one: fine
    assert refused(request(port, cert=pki.stranger))   # one that does not verify: refused


def test_client_certificate_per_domain(gyrus_factory, backend_factory, pki):
    """A domain may require client certificates while the listener's default does not."""
    be = backend_factory()
    port = free_port()
    gyrus_factory(tls_mesh(port, be.port, listener_ssl={"cert_key_pairs": [ckp(pki.default)]},
                           domains=(("a", "a.example.com", {"cert_key_pairs": [ckp(pki.a)], "trust_file": pki.ca.cert,
                                                            "require_client_certs": True}),
                                    ("any", "*", None))), "test")
    assert request(port, sni="localhost") == 200
    assert refused(request(port, sni="a.example.com"))
    assert request(port, sni="a.example.com", cert=pki.client) == 200


def xfcc_element(pki, server, client, fields):
    """What gyrus should add for `client` on a listener serving `server`'s certificate."""
    with open(client.cert) as f:
        der = ssl.PEM_cert_to_DER_cert(f.read())
    out = [f"By={server.uri}", f"Hash={hashlib.sha256(der).hexdigest()}"]
    if "subject" in fields:
        dn = openssl("x509", "-in", client.cert, "-noout", "-subject", "-nameopt", "RFC2253").strip()
        out.append('Subject="' + dn.split("=", 1)[1].strip() + '"')
    if "uri" in fields:
        out.append("URI=spiffe://example.org/ns/test/sa/client")
    return ";".join(out)


XFCC_CASES = {  # mode: (what the upstream sees with a client certificate, without one)
    "SANITIZE": (None, None),
    "FORWARD_ONLY": ("{spoof}", None),
    "APPEND_FORWARD": ("{spoof},{mine}", None),
    "SANITIZE_SET": ("{mine}", None),
    "ALWAYS_FORWARD_ONLY": ("{spoof}", "{spoof}"),
}


def test_forward_client_cert_details(gyrus_factory, backend_factory, pki):
    """x-forwarded-client-cert per listener mode (Envoy's semantics): the client's own value passes
    only where the mode says (over mTLS, or always), ours is By (our URI SAN), Hash (SHA-256 of the
    client's certificate) and the asked fields; without a verified client certificate nothing but
    ALWAYS_FORWARD_ONLY passes anything."""
    server = pki.issue("xfcc-server", "xfcc.test", ["DNS:localhost", "IP:127.0.0.1",
                                                   "URI:spiffe://example.org/ns/test/sa/server"])
    server.uri = "spiffe://example.org/ns/test/sa/server"
    spoof = "By=spiffe://evil/x;Hash=00;URI=spiffe://example.org/ns/test/sa/admin"
    mine = xfcc_element(pki, server, pki.client, ("uri", "subject"))
    be = backend_factory()
    for mode, expected in XFCC_CASES.items():
        port = free_port()
        objs = tls_mesh(port, be.port, listener_ssl={"cert_key_pairs": [ckp(server)], "trust_file": pki.ca.cert})
        objs[0]["forward_client_cert_details"] = mode
        objs[0]["set_current_client_cert_details"] = {"uri": True, "subject": True}
        g = gyrus_factory(objs, "test")
        for cert, want in ((pki.client, expected[0]), (None, expected[1])):
            n = len(be.requests)
            with contextlib.closing(tls_connect(port, sni="localhost", ca=pki.ca.cert, cert=cert)) as s:
                s.sendall(f"GET /x HTTP/1.1\r\nHost: localhost\r\nX-Forwarded-Client-Cert: {spoof}\r\n\r\n".encode())
                assert s.recv(65536).startswith(b"HTTP/1.1 200"), mode
            seen = be.requests[n][2].get("x-forwarded-client-cert")
            assert seen == (want.format(spoof=spoof, mine=mine) if want else None), (mode, cert is not None)
        g.stop()
    # the Grey Matter spelling (on the listener's secret), over HTTP/2 from curl, to an HTTP/2 upstream
    h2be = H2Backend()
    try:
        port = free_port()
        objs = tls_mesh(port, h2be.port, listener_ssl={"cert_key_pairs": [ckp(server)], "trust_file": pki.ca.cert},
                        cluster_extra={"http2_protocol_options": {}})
        objs[0]["secret"] = {"forward_client_cert_details": "APPEND_FORWARD",
                             "set_current_client_cert_details": {"URI": True}}
        gyrus_factory(objs, "test")
        r = subprocess.run(["curl", "-sS", "--http2", "-o", "/dev/null", "-w", "%{http_version} %{http_code}",
                            "--cacert", pki.ca.cert, "--cert", pki.client.cert, "--key", pki.client.key,
                            "-H", "x-forwarded-client-cert: By=a;Hash=b", f"https://localhost:{port}/h2"],
                           capture_output=True, text=True, timeout=20)
        assert r.stdout == "2 200", r
        assert h2be.requests[-1]["x-forwarded-client-cert"] == "By=a;Hash=b," + xfcc_element(pki, server, pki.client, ("uri",))
    finally:
        h2be.stop()


def read_response(s):
    """One whole HTTP/1.1 answer with a Content-Length from socket s: its head."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        assert chunk, data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    n = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:"))
    while len(body) < n:
        chunk = s.recv(65536)
        assert chunk
        body += chunk
    assert len(body) == n
    return head


def test_xfcc_fields_follow_a_reload_on_a_kept_connection(gyrus_factory, backend_factory, pki):
    """A reload that changes set_current_client_cert_details reaches the next request of a
    connection opened before it: the connection's element is made again for the new fields."""
    server = pki.issue("xfcc-reload", "xfcc.test", ["DNS:localhost", "IP:127.0.0.1",
                                                   "URI:spiffe://example.org/ns/test/sa/server"])
    server.uri = "spiffe://example.org/ns/test/sa/server"
    be = backend_factory()
    port = free_port()
    objs = tls_mesh(port, be.port, listener_ssl={"cert_key_pairs": [ckp(server)], "trust_file": pki.ca.cert})
    objs[0]["forward_client_cert_details"] = "SANITIZE_SET"
    objs[0]["set_current_client_cert_details"] = {"uri": True}
    g = gyrus_factory(objs, "test")
    with contextlib.closing(tls_connect(port, sni="localhost", ca=pki.ca.cert, cert=pki.client)) as s:
        def xfcc():
            n = len(be.requests)
            s.sendall(b"GET /x HTTP/1.1\r\nHost: localhost\r\n\r\n")
            assert read_response(s).startswith(b"HTTP/1.1 200")
            return be.requests[n][2].get("x-forwarded-client-cert")
        assert xfcc() == xfcc_element(pki, server, pki.client, ("uri",))
        objs[0]["set_current_client_cert_details"] = {"uri": True, "subject": True}
        g.write_mesh(objs)
        g.signal(signal.SIGHUP)
        wait_for(lambda: g.generation() == 2, 10, what="reload")
        assert xfcc() == xfcc_element(pki, server, pki.client, ("uri", "subject"))


@pytest.mark.parametrize("inline", [False, True])
def test_crl_revocation(gyrus_factory, backend_factory, pki, inline):
    be = backend_factory()
    port = free_port()
    crl = {"inline_string": open(pki.crl_path).read()} if inline else {"filename": pki.crl_path}
    g = gyrus_factory(tls_mesh(port, be.port, listener_ssl={
        "cert_key_pairs": [ckp(pki.default)], "trust_file": pki.ca.cert, "require_client_certs": True, "crl": crl}),
        "test")
    assert request(port, cert=pki.client) == 200
    assert refused(request(port, cert=pki.revoked))
    wait_for(lambda: fails(g, "certificate_revoked") >= 1, what="certificate_revoked counted")


def test_session_resumption_with_tickets(gyrus_factory, backend_factory, pki):
    be = backend_factory()
    port = free_port()
    g = gyrus_factory(tls_mesh(port, be.port, listener_ssl={"cert_key_pairs": [ckp(pki.default)]}), "test", workers=2)
    for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        ctx = client_ctx(max_version=version)
        with contextlib.closing(tls_connect(port, sni="localhost", ctx=ctx)) as s:
            exchange(s)  # TLS 1.3 tickets arrive after the handshake
            session = s.session
        raw = socket.create_connection(("127.0.0.1", port), timeout=5)
        with contextlib.closing(ctx.wrap_socket(raw, server_hostname="localhost", session=session)) as s:
            assert exchange(s)[0] == 200
            assert s.session_reused, version
    assert g.metric("gyrus_tls_sessions_resumed_total", listener="ingress") >= 2


def test_plain_http_on_a_tls_port(gyrus_factory, backend_factory, pki):
    be = backend_factory()
    port = free_port()
    g = gyrus_factory(tls_mesh(port, be.port, listener_ssl={"cert_key_pairs": [ckp(pki.default)]}), "test")
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        with contextlib.suppress(ConnectionResetError):
            assert b"HTTP/1.1 200" not in s.recv(4096)
    wait_for(lambda: fails(g, "not_tls") >= 1, what="not_tls counted")
    assert request(port) == 200


def threads(pid, what):
    out = []
    for t in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{t}/{what}") as f:
            out.append(f.read())
    return out


def all_threads_blocked(pid):
    """Every thread waits in a system call (the worker in epoll_wait, done with what it read)."""
    return all(st.rpartition(")")[2].split()[0] == "S" for st in threads(pid, "stat")) and \
        all(not sc.startswith("running") for sc in threads(pid, "syscall"))


def all_threads_stopped(pid):
    return all(st.rpartition(")")[2].split()[0] in "tT" for st in threads(pid, "stat"))


def test_client_reset_during_the_handshake_is_not_finished(gyrus_factory, backend_factory, pki):
    """A client that sends its Finished and resets at once (what `openssl s_time -new` and many
    probes do) is given up: the handshake is counted as connection_closed, not completed, and no
    tickets are made for it. gyrus is let go idle, then stopped while the client sends and resets,
    so the Finished and the reset both wait when its worker looks: no timing decides the outcome."""
    be = backend_factory()
    port = free_port()
    g = gyrus_factory(tls_mesh(port, be.port, listener_ssl={"cert_key_pairs": [ckp(pki.default)]}), "test")
    assert request(port) == 200
    done0, closed0 = g.metric("gyrus_tls_handshakes_total", listener="ingress"), fails(g, "connection_closed")

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(pki.ca.cert)
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(inc, out, server_hostname="localhost")
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    for _ in range(50):  # ClientHello out, the server's flight in, until our side is done
        try:
            tls.do_handshake()
            break
        except ssl.SSLWantReadError:
            if out.pending:
                s.sendall(out.read())
            inc.write(s.recv(65536))
    finished = out.read()
    assert tls.version() == "TLSv1.3" and finished
    wait_for(lambda: all_threads_blocked(g.proc.pid), what="gyrus idle")
    g.signal(signal.SIGSTOP)
    try:
        wait_for(lambda: all_threads_stopped(g.proc.pid), what="gyrus stopped")
        s.sendall(finished)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()  # RST
        time.sleep(0.2)
    finally:
        g.signal(signal.SIGCONT)
    wait_for(lambda: fails(g, "connection_closed") == closed0 + 1, what="reset counted as connection_closed")
    assert g.metric("gyrus_tls_handshakes_total", listener="ingress") == done0
    assert request(port) == 200
    assert g.metric("gyrus_tls_handshakes_total", listener="ingress") == done0 + 1


def test_certs_endpoint_and_expiry_metric(gyrus_factory, backend_factory, pki):
    be = backend_factory()
    port = free_port()
    g = gyrus_factory(tls_mesh(port, be.port, listener_ssl={"cert_key_pairs": [ckp(pki.default)]},
                               domains=(("a", "a.example.com", {"cert_key_pairs": [ckp(pki.a)]}),)), "test")
    status, _, body = g.admin("/certs")
    assert status == 200
    certs = {c["path"]: c for c in json.loads(body)["certificates"]}
    c = certs[pki.default.cert]
    assert c["kind"] == "listener" and c["name"] == "ingress"
    assert c["subject"] == "O=gyrus tests,CN=default.test" and c["issuer"] == "CN=gyrus test CA"
    assert c["sans"] == ["DNS:localhost", "IP:127.0.0.1"] and c["key_type"] == "EC P-256"
    assert 29 * 86400 < c["seconds_to_expiry"] <= 30 * 86400
    assert pki.a.cert in certs
    assert 29 * 86400 < g.metric("gyrus_tls_certificate_expiry_seconds", path=pki.a.cert) <= 30 * 86400


# ---- upstream ----

def upstream_mesh(port, backend, ssl_config=None, require_tls=None, host="127.0.0.1"):
    extra = {}
    if ssl_config is not None:
        extra["ssl_config"] = ssl_config
    if require_tls is not None:
        extra["require_tls"] = require_tls
    return tls_mesh(port, backend.port, cluster_extra=extra, instance_host=host)


def plain_get(port, path="/"):
    from conftest import http_get
    return http_get(f"http://127.0.0.1:{port}{path}")


def test_upstream_tls_verified_with_sni(gyrus_factory, tls_backend, pki):
    be = tls_backend(pki.backend)
    port = free_port()
    g = gyrus_factory(upstream_mesh(port, be, {"trust_file": pki.ca.cert, "sni": "backend.local"}), "test")
    status, _, body = plain_get(port)
    assert status == 200 and body == b"ok tls-backend\n"
    assert be.snis[-1] == "backend.local" and be.alpn[-1] == "http/1.1"
    assert g.metric("gyrus_tls_handshakes_total", cluster="backend") >= 1
    # keep-alive: a second request reuses the TLS connection
    n = len(be.snis)
    assert plain_get(port)[0] == 200 and len(be.snis) == n


def test_upstream_sni_is_the_instance_name(gyrus_factory, tls_backend, pki):
    be = tls_backend(pki.backend)
    port = free_port()
    gyrus_factory(upstream_mesh(port, be, {"trust_file": pki.ca.cert}, host="localhost"), "test")
    assert plain_get(port)[0] == 200
    assert be.snis[-1] == "localhost"


def test_upstream_wrong_ca_is_503_uf(gyrus_factory, tls_backend, pki):
    be = tls_backend(pki.backend)
    port = free_port()
    g = gyrus_factory(upstream_mesh(port, be, {"trust_file": pki.other_ca.cert}), "test")
    status, _, _ = plain_get(port)
    assert status == 503
    wait_for(lambda: any(e.get("response_flags") == "UF" for e in g.access_entries()), what="UF in the access log")
    assert g.metric("gyrus_tls_handshake_failures_total", cluster="backend", reason="certificate_verify_failed") >= 1
    assert "TLS handshake with an instance failed: certificate verify failed" in g.output()


def test_upstream_name_must_match_sni(gyrus_factory, tls_backend, pki):
    be = tls_backend(pki.backend)
    port = free_port()
    gyrus_factory(upstream_mesh(port, be, {"trust_file": pki.ca.cert, "sni": "not-the-backend.local"}), "test")
    assert plain_get(port)[0] == 503


def test_upstream_require_tls_uses_the_system_store(gyrus_factory, tls_backend, pki):
    be = tls_backend(pki.backend)  # signed by the test CA, which the system store does not know
    port = free_port()
    gyrus_factory(upstream_mesh(port, be, require_tls=True), "test")
    assert plain_get(port)[0] == 503


def test_upstream_mtls(gyrus_factory, tls_backend, pki):
    be = tls_backend(pki.backend, client_ca=pki.ca.cert)
    p1, p2 = free_port(), free_port()
    gyrus_factory(upstream_mesh(p1, be, {"trust_file": pki.ca.cert, "cert_key_pairs": [ckp(pki.proxy_client)]}), "test")
    assert plain_get(p1)[0] == 200
    assert be.client_cns[-1] == "gyrus-proxy"
    gyrus_factory(upstream_mesh(p2, be, {"trust_file": pki.ca.cert}), "test")  # no client certificate
    assert plain_get(p2)[0] == 503


def test_upstream_sessions_resume(gyrus_factory, tls_backend, pki):
    """Each new upstream connection offers the host's last session: after the first full
    handshake (with the client certificate checked), the next connections resume, and the
    server still knows the client."""
    be = tls_backend(pki.backend, client_ca=pki.ca.cert)
    port = free_port()
    g = gyrus_factory(upstream_mesh(port, be, {"trust_file": pki.ca.cert, "cert_key_pairs": [ckp(pki.proxy_client)]}),
                      "test")
    for _ in range(4):
        assert plain_get(port, "/eof")[0] == 200  # the backend closes after each answer: a new connection each
    assert be.resumed == [False, True, True, True], be.resumed
    assert be.client_cns == ["gyrus-proxy"] * 4
    assert g.metric("gyrus_tls_sessions_resumed_total", cluster="backend") == 3


def test_health_checks_to_tls_clusters_go_over_tls(gyrus_factory, tls_backend, pki):
    good, bad = tls_backend(pki.backend, name="good"), tls_backend(pki.backend, name="bad")
    hc = {"interval_msec": 100, "timeout_msec": 1000, "unhealthy_threshold": 2, "healthy_threshold": 1,
          "health_checker": {"http_health_check": {"path": "/health"}}}
    p1, p2 = free_port(), free_port()
    g = gyrus_factory(tls_mesh(p1, good.port, cluster_extra={"ssl_config": {"trust_file": pki.ca.cert,
                                                                            "sni": "backend.local"},
                                                             "health_checks": [hc]}), "test")
    addr = f"127.0.0.1:{good.port}"
    wait_for(lambda: g.metric("gyrus_cluster_health_check_success_total", cluster="backend", host=addr) >= 3,
             what="three passing checks over TLS")
    assert g.metric("gyrus_cluster_host_healthy", cluster="backend", host=addr) == 1
    checks = [r for r in good.requests if r[1] == "/health"]
    assert len(checks) >= 3 and checks[0][2]["user-agent"] == "gyrus-health-check"
    assert "backend.local" in good.snis and not good.handshake_errors
    assert plain_get(p1)[0] == 200
    # a server whose certificate the cluster does not trust fails its checks
    g2 = gyrus_factory(tls_mesh(p2, bad.port, cluster_extra={"ssl_config": {"trust_file": pki.other_ca.cert},
                                                             "health_checks": [hc]}), "test")
    addr = f"127.0.0.1:{bad.port}"
    wait_for(lambda: g2.metric("gyrus_cluster_health_check_failure_total", cluster="backend", host=addr) >= 2,
             what="failed checks")
    wait_for(lambda: g2.metric("gyrus_cluster_host_healthy", cluster="backend", host=addr) == 0, what="unhealthy")
    wait_for(lambda: "is unhealthy after 2 failed http checks in a row (TLS handshake failed)" in g2.output(),
             what="the reason in the log")


# ---- reload ----

def copy_pair(src, dst_dir, name="live"):
    cert, key = os.path.join(dst_dir, f"{name}.pem"), os.path.join(dst_dir, f"{name}.key")
    for s, d in ((src.cert, cert), (src.key, key)):
        shutil.copyfile(s, d + ".tmp")
        os.rename(d + ".tmp", d)
    return types.SimpleNamespace(cert=cert, key=key)


def test_certificate_reload_keeps_open_connections(gyrus_factory, backend_factory, pki):
    be = backend_factory()
    port = free_port()
    d = tempfile.mkdtemp(prefix="gyrus-tls-live-")
    try:
        live = copy_pair(pki.default, d)
        g = gyrus_factory(tls_mesh(port, be.port, listener_ssl={"cert_key_pairs": [ckp(live)]}), "test")
        old = tls_connect(port, sni="localhost", ca=pki.ca.cert)
        assert peer_cn(old) == "default.test" and exchange(old)[0] == 200
        newer = pki.issue("reloaded", "reloaded.test", ["DNS:localhost"])
        copy_pair(newer, d)
        wait_for(lambda: g.metric("gyrus_tls_certificate_reloads_total", listener="ingress") >= 1, timeout=15,
                 what="certificate reload")
        with contextlib.closing(tls_connect(port, sni="localhost", ca=pki.ca.cert)) as s:
            assert peer_cn(s) == "reloaded.test" and exchange(s)[0] == 200
        # the keep-alive connection made before is still served, with its certificate
        assert exchange(old)[0] == 200 and peer_cn(old) == "default.test"
        old.close()
        # a key that does not match: refused, the loaded certificate stays
        shutil.copyfile(pki.a.key, live.key)
        wait_for(lambda: g.metric("gyrus_tls_certificate_reload_failures_total", listener="ingress") >= 1,
                 timeout=15, what="refused reload")
        assert "certificate files changed but cannot be used" in g.output()
        with contextlib.closing(tls_connect(port, sni="localhost", ca=pki.ca.cert)) as s:
            assert peer_cn(s) == "reloaded.test" and exchange(s)[0] == 200
        status, _, body = g.admin("/certs")
        assert json.loads(body)["certificates"][0]["subject"] == "O=gyrus tests,CN=reloaded.test"
    finally:
        shutil.rmtree(d, ignore_errors=True)


# ---- errors ----

def run_and_fail(objects, *extra):
    d = tempfile.mkdtemp(prefix="gyrus-tls-bad-")
    try:
        path = os.path.join(d, "mesh.json")
        with open(path, "w") as f:
            json.dump(objects, f)
        r = subprocess.run([GYRUS, "proxy", "--config", path, "--name", "test", "--admin", "off", "--workers", "1",
                            *extra], capture_output=True, timeout=30)
        return r.returncode, r.stderr.decode()
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_bad_paths_refuse_to_start_with_one_line(pki):
    port = free_port()
    rc, err = run_and_fail(tls_mesh(port, 1, listener_ssl={"cert_key_pairs": [
        {"certificate_path": "/nonexistent/x.pem", "key_path": pki.default.key}]}))
    assert rc == 1
    assert err == ('proxy: error: listener "ingress": ssl_config.cert_key_pairs[0].certificate_path: '
                   'cannot read /nonexistent/x.pem: No such file or directory\n')
    rc, err = run_and_fail(tls_mesh(port, 1, listener_ssl={"cert_key_pairs": [
        {"certificate_path": pki.default.cert, "key_path": pki.a.key}]}))
    assert rc == 1
    assert err == (f'proxy: error: listener "ingress": ssl_config.cert_key_pairs[0].key_path: {pki.a.key} '
                   f'does not match the certificate {pki.default.cert}\n')
    rc, err = run_and_fail(tls_mesh(port, 1, domains=(("a", "a.example.com", {"cert_key_pairs": [
        {"certificate_path": pki.a.cert, "key_path": "/nonexistent/a.key"}]}),)))
    assert rc == 1 and err.startswith('proxy: error: domain "a": ssl_config.cert_key_pairs[0].key_path: cannot read')
    rc, err = run_and_fail(tls_mesh(port, 1, listener_ssl={"cert_key_pairs": [ckp(pki.default)],
                                                           "require_client_certs": True}))
    assert rc == 1 and "ssl_config.require_client_certs: needs trust_file" in err
    rc, err = run_and_fail(tls_mesh(port, 1, cluster_extra={"ssl_config": {"trust_file": "/nonexistent/ca.pem"}}))
    assert rc == 1 and err == ('proxy: error: cluster "backend": ssl_config.trust_file: cannot read /nonexistent/ca.pem: '
                               'No such file or directory\n')
    rc, err = run_and_fail(tls_mesh(port, 1, listener_ssl={"cert_key_pairs": [ckp(pki.default)],
                                                           "protocols": ["TLSv1_0"]}))
    assert rc == 1 and "ssl_config.protocols: TLSv1_0 and TLSv1_1 are not supported" in err
    rc, err = run_and_fail(tls_mesh(port, 1, cluster_extra={"secret": {"secret_name": "spiffe://x/y"}}))
    assert rc == 1 and 'cluster "backend": secret: this proxy has no SVID' in err  # static mode: no mesh CA


def test_bad_reload_keeps_the_running_config(gyrus_factory, backend_factory, pki):
    be = backend_factory()
    port = free_port()
    g = gyrus_factory(tls_mesh(port, be.port, listener_ssl={"cert_key_pairs": [ckp(pki.default)]}), "test")
    g.write_mesh(tls_mesh(port, be.port, listener_ssl={"cert_key_pairs": [
        {"certificate_path": "/nonexistent/x.pem", "key_path": pki.default.key}]}))
    wait_for(lambda: g.metric("gyrus_config_reload_failures_total") >= 1, what="reload refused")
    assert "cannot read /nonexistent/x.pem" in g.output()
    assert request(port) == 200


# ---- FIPS ----

def fips_provider_available():
    return subprocess.run(["openssl", "list", "-providers", "-provider", "fips"], capture_output=True).returncode == 0


def test_fips_required_without_the_provider_refuses_to_start(pki):
    if fips_provider_available():
        pytest.skip("the FIPS provider is installed here")
    rc, err = run_and_fail(tls_mesh(free_port(), 1, listener_ssl={"cert_key_pairs": [ckp(pki.default)]}),
                           "--fips", "required")
    assert rc == 1
    assert err.startswith("proxy: error: --fips required: the OpenSSL FIPS provider cannot be loaded (")
    assert err.count("\n") == 1
    rc, err = run_and_fail([], "--fips", "maybe")
    assert rc == 1 and 'expected on, off or required, got "maybe"' in err


def test_fips_on_restricts_tls(gyrus_factory, backend_factory, pki):
    be = backend_factory()
    port = free_port()
    g = gyrus_factory(tls_mesh(port, be.port, listener_ssl={"cert_key_pairs": [ckp(pki.default)]}), "test",
                      extra=("--fips", "on"))
    assert g.metric("gyrus_tls_fips_mode") == 1
    if not fips_provider_available():
        assert "FIPS mode on without the OpenSSL FIPS provider" in g.output()
    with contextlib.closing(tls_connect(port, sni="localhost")) as s:
        assert s.cipher()[0] in ("TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384") and exchange(s)[0] == 200
    assert refused(request(port, max_version=ssl.TLSVersion.TLSv1_2, ciphers="ECDHE-ECDSA-CHACHA20-POLY1305"))
    with contextlib.closing(tls_connect(port, sni="localhost", max_version=ssl.TLSVersion.TLSv1_2)) as s:
        assert s.cipher()[0] == "ECDHE-ECDSA-AES128-GCM-SHA256"
    for args in (["-tls1_3", "-ciphersuites", "TLS_CHACHA20_POLY1305_SHA256"], ["-tls1_3", "-groups", "X25519"]):
        r = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", *args], input=b"",
                           capture_output=True, timeout=20)
        assert r.returncode != 0, args
    # keys FIPS does not allow here are refused at load
    p521 = pki.issue("p521", "p521.test", ["DNS:localhost"], kind="P-521")
    rc, err = run_and_fail(tls_mesh(free_port(), 1, listener_ssl={"cert_key_pairs": [ckp(p521)]}), "--fips", "on")
    assert rc == 1 and "FIPS mode: ECDSA keys must be on P-256 or P-384 (this one is on secp521r1)" in err


# Automatic mTLS between sidecars (`secret` from the control plane, SVIDs from its CA) is tested
# end to end in test_mtls_mesh.py.
