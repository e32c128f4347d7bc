"""The control API over HTTPS (`gyrus control --tls-cert/--tls-key`): real clients (Python's ssl,
curl, the gyrus CLI on libcurl, `gyrus proxy` on its own client) verify the control plane against
a CA, a plain HTTP request on the TLS port is told to use https://, a certificate replaced on disk
is served to new connections (a bad replacement is refused and logged), and proxies that cannot
verify the control plane refuse it with the reason and take nothing from it."""
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time

import pytest
import requests

from control_fixtures import Control, control_factory, http, run_cli  # noqa: F401 (control_factory: a fixture)
from conftest import GYRUS, Process, free_port, simple_mesh, wait_for


def openssl(*args):
    out = subprocess.run(["openssl", *args], capture_output=True, timeout=30)
    assert out.returncode == 0, out.stderr.decode()
    return out.stdout


class Pki:
    """A CA and server certificates signed by it, in a temp dir."""

    def __init__(self, name="test-ca"):
        self.dir = tempfile.mkdtemp(prefix="gyrus-ctl-tls-")
        self.ca, self.ca_key = self.path("ca.pem"), self.path("ca.key")
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
                self.ca_key, "-out", self.ca, "-subj", f"/CN={name}", "-days", "2")

    def path(self, name):
        return os.path.join(self.dir, name)

    def server(self, name, sans="IP:127.0.0.1,DNS:localhost"):
        key, csr, crt, ext = (self.path(f"{name}.{x}") for x in ("key", "csr", "pem", "ext"))
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", csr,
                "-subj", f"/CN={name}")
        with open(ext, "w") as f:
            f.write(f"subjectAltName={sans}\n")
        openssl("x509", "-req", "-in", csr, "-CA", self.ca, "-CAkey", self.ca_key, "-CAcreateserial", "-out", crt,
                "-days", "1", "-extfile", ext)
        return crt, key

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def pki():
    p = Pki()
    yield p
    p.cleanup()


def served_cert(port, *what):
    """`openssl x509 -noout WHAT` of the certificate a new connection to the port gets (not
    verified: just looked at)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s, ctx.wrap_socket(s) as t:
        der = t.getpeercert(binary_form=True)
    return subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", *what], input=der,
                          capture_output=True, timeout=10).stdout.decode()


def served_cn(port):
    return served_cert(port, "-subject").strip().rsplit("=", 1)[-1].strip()


def test_api_over_https(control_factory, pki):
    crt, key = pki.server("control")
    c = control_factory(tls=(crt, key, pki.ca))
    assert c.url.startswith("https://")
    assert c.ok("GET", "/v1.0/cluster") == []

    # Clients that check the certificate against the CA get through, by IP and by name.
    r = subprocess.run(["curl", "-sS", "--cacert", pki.ca, f"https://localhost:{c.port}/v1.0/zone"],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 0 and r.stdout.strip() == '{"result":[]}', r.stderr
    # ...and those that do not trust it are refused by their own TLS stack.
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(c.url + "/v1.0/zone", timeout=5)

    # Plain HTTP on the TLS port: a 400 that says what to do, in plain text.
    status, body = http("GET", f"http://127.0.0.1:{c.port}/v1.0/zone")
    assert status == 400 and "use https://" in body["error"]["message"]

    # Junk instead of a ClientHello: that connection is closed, the server goes on.
    with socket.create_connection(("127.0.0.1", c.port), timeout=5) as s:
        s.sendall(b"\x16\x03\x01\x00\x05hello" + os.urandom(200))
        s.settimeout(5)
        try:
            while s.recv(4096):
                pass
        except (ConnectionResetError, socket.timeout):
            pass
    # A client that connects and says nothing holds only its own connection.
    idle = socket.create_connection(("127.0.0.1", c.port), timeout=5)
    try:
        assert c.ok("GET", "/v1.0/zone") == []
    finally:
        idle.close()

    # The CLI: --control-ca (or $GYRUS_CONTROL_CA) makes libcurl trust the CA.
    url = f"https://localhost:{c.port}"
    out = run_cli("apply", "-f", "-", "--control", url, "--control-ca", pki.ca,
                  input='- {kind: zone, zone_key: z1, name: z1}\n')
    assert out.returncode == 0, out.stderr
    out = run_cli("get", "zones", "--control", url, env={**os.environ, "GYRUS_CONTROL_CA": pki.ca})
    assert out.returncode == 0 and "z1" in out.stdout, out.stderr
    out = run_cli("get", "zones", "--control", url)
    assert out.returncode != 0 and "certificate" in out.stderr, out.stderr
    out = run_cli("get", "zones", "--control", f"http://127.0.0.1:{c.port}", "--control-ca", pki.ca)
    assert out.returncode != 0 and "--control-ca is for an https:// control plane" in out.stderr


def test_certificate_replaced_on_disk(control_factory, pki):
    crt, key = pki.server("first")
    live_crt, live_key = pki.path("live.pem"), pki.path("live.key")
    shutil.copy(crt, live_crt)
    shutil.copy(key, live_key)
    c = control_factory(tls=(live_crt, live_key, pki.ca))
    assert served_cn(c.port) == "first"
    held = requests.Session()
    assert held.get(c.url + "/v1.0/zone", timeout=5, verify=pki.ca).status_code == 200  # a keep-alive connection

    # A new certificate and key: new connections get it within a few seconds.
    crt2, key2 = pki.server("second")
    for src, dst in ((crt2, live_crt + ".tmp"), (key2, live_key + ".tmp")):
        shutil.copy(src, dst)
    os.rename(live_key + ".tmp", live_key)
    os.rename(live_crt + ".tmp", live_crt)
    wait_for(lambda: served_cn(c.port) == "second", 10, what="the new certificate served")
    assert "HTTPS: certificate reloaded" in c.output()
    assert held.get(c.url + "/v1.0/zone", timeout=5, verify=pki.ca).status_code == 200  # still usable

    # A key that does not match: refused, logged once, the last good certificate stays.
    _, key3 = pki.server("third")
    shutil.copy(key3, live_key)
    wait_for(lambda: "HTTPS: keeping the current certificate" in c.output(), 10, what="the bad pair logged")
    time.sleep(2.5)  # more checks of the same files: no new warning
    assert c.output().count("HTTPS: keeping the current certificate") == 1
    assert served_cn(c.port) == "second"
    assert c.ok("GET", "/v1.0/zone") == []


@pytest.mark.parametrize("args, message", [
    (["--tls-cert", "CRT"], "--tls-cert and --tls-key go together"),
    (["--tls-cert", "/nonexistent/c.pem", "--tls-key", "KEY"], "--tls-cert/--tls-key: No such file or directory"),
    (["--tls-cert", "KEY", "--tls-key", "KEY"], "cannot use it as a certificate chain"),
    (["--tls-cert", "CRT", "--tls-key", "OTHERKEY"], "does not match the certificate"),
])
def test_bad_tls_options_refuse_to_start(pki, tmp_path, args, message):
    crt, key = pki.server("control")
    _, other = pki.server("other")
    args = [{"CRT": crt, "KEY": key, "OTHERKEY": other}.get(a, a) for a in args]
    out = subprocess.run([GYRUS, "control", "--data-dir", str(tmp_path), "--listen", f"127.0.0.1:{free_port()}",
                          *args], capture_output=True, text=True, timeout=20)
    assert out.returncode != 0 and message in out.stderr, out.stderr


class HttpsProxy(Process):
    def __init__(self, url, ca, name, extra=(), node=None, env=None):
        self.data_dir = tempfile.mkdtemp(prefix="gyrus-proxy-")
        self.admin_port = free_port()
        node = node or f"{name}-node"
        args = [GYRUS, "proxy", "--control", url, "--name", name, "--zone", "zone-1", "--node", node,
                "--data-dir", self.data_dir, "--workers", "1", "--admin", f"127.0.0.1:{self.admin_port}", *extra]
        if ca:
            args += ["--control-ca", ca]
        super().__init__(args, f"proxy-{node}", env=env)

    def cleanup(self):
        shutil.rmtree(self.data_dir, ignore_errors=True)


def joined_proxy(c, ca, backend):
    """A mesh with a listener in front of `backend` for proxy "web", and a proxy that joins with a
    token over HTTPS (trusting `ca`). Returns the listener's port and the proxy."""
    port = free_port()
    c.apply(simple_mesh(port, [backend.port], name="web"))
    out = run_cli("token", "create", "--service", "web", "--control", c.url, "--control-ca", ca)
    assert out.returncode == 0, out.stderr
    return port, HttpsProxy(c.url, ca, "web", ["--join-token", out.stdout.strip()])


def test_proxy_follows_an_https_control_plane(control_factory, backend_factory, pki):
    crt, key = pki.server("control")
    c = control_factory(tls=(crt, key, pki.ca))
    port, p = joined_proxy(c, pki.ca, backend_factory("over-tls"))
    try:
        wait_for(lambda: requests.get(f"http://127.0.0.1:{port}/", timeout=5).text.strip() == "ok over-tls", 15,
                 what="the proxy serving the view it polled over HTTPS")
        rows = lambda: [r for r in c.status()["proxies"] if r["node"] == "web-node"]  # noqa: E731
        wait_for(lambda: rows() and rows()[0]["status"] == "ACK", 10, what="the ACK, over HTTPS too")
        # The join token and CSR went over TLS as well: the SVID is on disk.
        wait_for(lambda: os.path.exists(os.path.join(p.data_dir, "svid-web.crt")), 10, what="SVID")
        # Still no libcurl in the proxy: its own client speaks TLS through OpenSSL, already loaded.
        with open(f"/proc/{p.proc.pid}/maps") as f:
            assert "libcurl" not in f.read()
        # A change reaches it.
        b2 = backend_factory("changed")
        c.apply(simple_mesh(port, [b2.port], name="web"))
        wait_for(lambda: requests.get(f"http://127.0.0.1:{port}/", timeout=5).text.strip() == "ok changed", 15,
                 what="the change")
    finally:
        p.check_clean_exit()
        p.cleanup()


def test_proxy_refuses_a_control_plane_it_cannot_verify(control_factory, backend_factory, pki, tmp_path):
    crt, key = pki.server("control")
    c = control_factory(tls=(crt, key, pki.ca))
    port = free_port()
    c.apply(simple_mesh(port, [backend_factory("never").port], name="web"))
    other = Pki("another-ca")
    # Wrong trust anchors; and the right ones for a certificate that names another host.
    wrong_name = control_factory(tls=(*pki.server("elsewhere", "DNS:elsewhere.example"), pki.ca), wait=False)
    cases = [(c.url, other.ca, "the server's certificate does not verify: unable to get local issuer certificate"),
             (wrong_name.url, pki.ca, "the server's certificate does not verify: IP address mismatch")]
    procs = []
    try:
        for url, ca, _ in cases:
            procs.append(HttpsProxy(url, ca, "web"))
        for p, (_, _, reason) in zip(procs, cases):
            wait_for(lambda: reason in p.output(), 15, what=f"'{reason}' logged")
            assert p.alive()
        assert not [r for r in c.status()["proxies"] if r["node"] == "web-node"]  # nothing reached the API
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(f"http://127.0.0.1:{port}/", timeout=2)
    finally:
        for p in procs:
            p.check_clean_exit()
            p.cleanup()
        other.cleanup()

    # Options refused at start, with the reason.
    for args, message in [
        (["--control", c.url, "--control-ca", str(tmp_path / "missing.pem")], "--control-ca:"),
        (["--control", f"http://127.0.0.1:{c.port}", "--control-ca", pki.ca], "--control-ca is for an https://"),
        (["--control", f"ftp://127.0.0.1:{c.port}"], "want an http:// or https:// URL"),
    ]:
        out = subprocess.run([GYRUS, "proxy", "--name", "web", "--data-dir", str(tmp_path), "--admin", "off", *args],
                             capture_output=True, text=True, timeout=20)
        assert out.returncode != 0 and message in out.stderr, out.stderr


def test_tls_auto(control_factory, backend_factory):
    """--tls-auto: HTTPS with a certificate the mesh CA issues for the control plane's names and
    renews before it expires; clients trust the CA's root in the data directory."""
    c = control_factory(tls="auto", extra=["--tls-san", "ctl.example,10.9.8.7", "--tls-ttl", "3s"])
    assert c.url.startswith("https://") and os.path.exists(c.ca)
    assert c.ok("GET", "/v1.0/zone") == []  # Python's ssl: the chain to the root, and the IP
    for url, extra in [(f"https://localhost:{c.port}/v1.0/zone", []),
                       (f"https://ctl.example:{c.port}/v1.0/zone", ["--resolve", f"ctl.example:{c.port}:127.0.0.1"])]:
        r = subprocess.run(["curl", "-sS", "--cacert", c.ca, *extra, url], capture_output=True, text=True, timeout=20)
        assert r.returncode == 0 and '"result": []' in r.stdout.replace('"result":[]', '"result": []'), r.stderr
    r = subprocess.run(["curl", "-sS", f"https://127.0.0.1:{c.port}/ready"], capture_output=True, text=True, timeout=20)
    assert r.returncode == 60, r  # not in the system's trust store
    # What it is: the names, TLS server use only, no SPIFFE ID, issued by the mesh root, 3 s.
    text = served_cert(c.port, "-text", "-serial")
    for name in ["DNS:ctl.example", "IP Address:10.9.8.7", "DNS:localhost", "IP Address:127.0.0.1",
                 "IP Address:0:0:0:0:0:0:0:1"]:
        assert name in text, text
    assert "TLS Web Server Authentication" in text and "Client Authentication" not in text
    assert "URI:" not in text and "Issuer: O = gyrus, CN = gyrus.local" in text, text
    assert "HTTPS: a certificate from the mesh CA for ctl.example, 10.9.8.7, 127.0.0.1, localhost, ::1" in c.output()
    # Renewed at two thirds of its life: a new serial, still verified.
    serial = text.rsplit("serial=", 1)[1].strip()
    wait_for(lambda: served_cert(c.port, "-serial").strip().rsplit("=", 1)[1] != serial, 6,
             what="a renewed certificate")
    assert c.ok("GET", "/v1.0/zone") == []
    assert "HTTPS: certificate renewed" in c.output()
    # A proxy trusts the same root, and keeps following through the renewals.
    port, p = joined_proxy(c, c.ca, backend_factory("auto-tls"))
    try:
        wait_for(lambda: requests.get(f"http://127.0.0.1:{port}/", timeout=5).text.strip() == "ok auto-tls", 15,
                 what="the proxy serving its view")
        time.sleep(4)  # two renewals
        b2 = backend_factory("after-renewal")
        c.apply(simple_mesh(port, [b2.port], name="web"))
        wait_for(lambda: requests.get(f"http://127.0.0.1:{port}/", timeout=5).text.strip() == "ok after-renewal", 15,
                 what="a change after the renewals")
        assert "does not verify" not in p.output()
    finally:
        p.check_clean_exit()
        p.cleanup()


def test_tls_auto_with_many_names(control_factory):
    """A long --tls-san (over 1 KiB) is taken whole: its last name is in the certificate."""
    names = [f"service-{i:03d}.mesh.example" for i in range(60)]
    c = control_factory(tls="auto", extra=["--tls-san", ",".join(names)])
    text = served_cert(c.port, "-text")
    assert all(f"DNS:{n}" in text for n in names), text


def test_tls_auto_under_an_intermediate_ca(control_factory, pki):
    """With --ca-cert (an intermediate under an offline root) the intermediate goes out with the
    certificate, so that clients trusting only the root verify the control plane."""
    key, csr, crt, ext = (pki.path(f"inter.{x}") for x in ("key", "csr", "pem", "ext"))
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", csr,
            "-subj", "/CN=intermediate")
    with open(ext, "w") as f:
        f.write("basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n"
                "subjectAltName=URI:spiffe://gyrus.local\n")
    openssl("x509", "-req", "-in", csr, "-CA", pki.ca, "-CAkey", pki.ca_key, "-CAcreateserial", "-out", crt,
            "-days", "1", "-extfile", ext)
    c = control_factory(tls="auto", extra=["--ca-cert", crt, "--ca-key", key], wait=False)
    c.ca = pki.ca  # the root only
    c.wait_ready()
    assert c.ok("GET", "/v1.0/zone") == []
    r = subprocess.run(["curl", "-sS", "--cacert", pki.ca, f"https://localhost:{c.port}/ready"], capture_output=True,
                       text=True, timeout=20)
    assert r.returncode == 0 and r.stdout.strip() == "ready", r.stderr
    assert f"clients trust {crt} or a root above it" in c.output()


@pytest.mark.parametrize("args, message", [
    (["--tls-auto", "--tls-cert", "CRT", "--tls-key", "KEY"], "--tls-auto or --tls-cert/--tls-key: one or the other"),
    (["--tls-san", "ctl.example"], "--tls-san and --tls-ttl are for --tls-auto"),
    (["--tls-ttl", "1h"], "--tls-san and --tls-ttl are for --tls-auto"),
    (["--tls-auto", "--tls-san", "ctl.example,bad_name!"], '--tls-san: "bad_name!" is neither an IP address nor'),
    (["--tls-auto", "--tls-san", "a..example"], '"a..example" is neither'),
    (["--tls-auto", "--tls-ttl", "2s"], "--tls-ttl: want at least 3s"),
    (["--tls-auto", "--tls-ttl", "1000h"], '--tls-ttl: want a duration like 250ms, 10s or 2m, got "1000h"'),
])
def test_bad_tls_auto_options_refuse_to_start(pki, tmp_path, args, message):
    crt, key = pki.server("control")
    args = [{"CRT": crt, "KEY": key}.get(a, a) for a in args]
    out = subprocess.run([GYRUS, "control", "--data-dir", str(tmp_path), "--listen", f"127.0.0.1:{free_port()}",
                          *args], capture_output=True, text=True, timeout=20)
    assert out.returncode != 0 and message in out.stderr, out.stderr


KEY1, KEY2, READER = "k1-0123456789abcdef", "k2-fedcba9876543210", "k3-only-reads-0123456"


def keyed(c, method, path, key=None, scheme="Bearer"):
    headers = {"Authorization": f"{scheme} {key}"} if key else {}
    return requests.request(method, c.url + path, headers=headers, verify=c.ca or True, timeout=5)


def test_api_keys(control_factory, pki, tmp_path):
    crt, key = pki.server("control")
    keys = tmp_path / "keys"
    keys.write_text(f"# the API keys\n{KEY1}\n\n   {KEY2}   admin\n{READER}\tread\n")
    c = Control(tls=(crt, key, pki.ca), extra=["--api-key-file", str(keys)])
    try:
        # Open without a key: readiness, version, the CA's bundle.
        for path in ("/ready", "/version", "/v1.0/version", "/v1.0/ca/bundle"):
            assert keyed(c, "GET", path).status_code == 200, path
        refused = 0
        # The rest wants a key.
        for path in ("/v1.0/cluster", "/v1.0/status", "/metrics", "/v1.0/xds/web"):
            r = keyed(c, "GET", path)
            refused += 1
            assert r.status_code == 401 and r.headers["www-authenticate"] == 'Bearer realm="gyrus"', path
            assert r.json()["error"]["message"].startswith("authentication required: an API key")
        r = keyed(c, "POST", "/v1.0/apply", "not-a-key-but-long-enough")
        refused += 1
        assert r.status_code == 401 and r.json()["error"]["message"] == "invalid API key"
        assert keyed(c, "GET", "/v1.0/cluster", KEY1[:-1]).status_code == 401  # one character short
        assert keyed(c, "GET", "/v1.0/cluster", KEY1, scheme="Basic").status_code == 401
        refused += 2
        assert keyed(c, "GET", "/v1.0/cluster", KEY1).json() == {"result": []}
        assert keyed(c, "GET", "/v1.0/cluster", KEY2, scheme="bearer").status_code == 200
        # A read-only key: GET anything, change nothing.
        assert keyed(c, "GET", "/v1.0/zone", READER).status_code == 200
        r = keyed(c, "DELETE", "/v1.0/zone/z9", READER)
        refused += 1
        assert r.status_code == 403 and r.json()["error"]["message"] == "a read-only key may only GET"
        metrics = keyed(c, "GET", "/metrics", READER).text
        assert f"gyrus_control_auth_refused_total {refused}" in metrics

        # The CLI sends $GYRUS_API_KEY, or the first key of --api-key-file.
        url = c.url
        env = {**os.environ, "GYRUS_CONTROL_CA": pki.ca}
        out = run_cli("apply", "-f", "-", "--control", url, env={**env, "GYRUS_API_KEY": KEY2},
                      input="- {kind: zone, zone_key: z1, name: z1}\n")
        assert out.returncode == 0, out.stderr
        out = run_cli("get", "zones", "--control", url, "--api-key-file", str(keys), env=env)
        assert out.returncode == 0 and "z1" in out.stdout, out.stderr
        out = run_cli("get", "zones", "--control", url, env=env)
        assert out.returncode == 1 and out.stderr.strip() == \
            "get: error: authentication required: an API key (Authorization: Bearer KEY)"

        # SIGHUP reads the keys again; a file that does not load keeps the keys in use.
        keys.write_text(f"{KEY2}\n")
        c.signal(signal.SIGHUP)
        wait_for(lambda: keyed(c, "GET", "/v1.0/zone", KEY1).status_code == 401, 10, what="KEY1 dropped")
        assert keyed(c, "GET", "/v1.0/zone", KEY2).status_code == 200
        keys.write_text("short\n")
        c.signal(signal.SIGHUP)
        wait_for(lambda: "SIGHUP: keeping the API keys in use" in c.output(), 10, what="the bad key file logged")
        assert "too easy to guess" in c.output()
        assert keyed(c, "GET", "/v1.0/zone", KEY2).status_code == 200
    finally:
        c.check_clean_exit()


@pytest.mark.parametrize("content, message", [
    (None, "--api-key-file: /nonexistent/keys: No such file or directory"),
    ("short-key\n", ":1: a key of 9 characters is too easy to guess (at least 16)"),
    ("# only a comment\n\n", ": no key in it"),
    ("k1-0123456789abcdef writer\n", ':1: after the key, want the role read or admin, not "writer"'),
    ("k1-\x010123456789abcdef\n", ":1: a key is one word of printable characters"),
])
def test_bad_key_files_refuse_to_start(tmp_path, content, message):
    path = "/nonexistent/keys"
    if content is not None:
        path = str(tmp_path / "keys")
        with open(path, "w") as f:
            f.write(content)
    out = subprocess.run([GYRUS, "control", "--data-dir", str(tmp_path), "--listen", f"127.0.0.1:{free_port()}",
                          "--api-key-file", path], capture_output=True, text=True, timeout=20)
    assert out.returncode != 0 and message in out.stderr, out.stderr


def test_keys_over_plain_http_are_warned_about(control_factory, tmp_path):
    keys = tmp_path / "keys"
    keys.write_text(KEY1 + "\n")
    c = control_factory(extra=["--api-key-file", str(keys)], wait=False)
    wait_for(lambda: "API keys cross the network in clear text" in c.output(), 10, what="the warning")
    c.wait_ready()  # the warning comes before the listener
    assert keyed(c, "GET", "/v1.0/zone").status_code == 401
    assert keyed(c, "GET", "/v1.0/zone", KEY1).status_code == 200


def test_proxies_poll_with_their_svid(control_factory, backend_factory, pki, tmp_path):
    crt, key = pki.server("control")
    keys = tmp_path / "keys"
    keys.write_text(KEY1 + "\n")
    c = Control(tls=(crt, key, pki.ca), extra=["--api-key-file", str(keys), "--trust-domain", "example.org"])
    procs = []
    try:
        b = backend_factory("svid")
        port = free_port()
        mesh = simple_mesh(port, [b.port], name="web")
        r = requests.post(c.url + "/v1.0/apply", json=mesh, headers={"Authorization": f"Bearer {KEY1}"},
                          verify=pki.ca, timeout=10)
        assert r.status_code == 200, r.text
        env = {**os.environ, "GYRUS_CONTROL_CA": pki.ca, "GYRUS_API_KEY": KEY1}
        out = run_cli("token", "create", "--service", "web", "--zone", "zone-1", "--control", c.url, env=env)
        assert out.returncode == 0, out.stderr

        # A proxy with a join token and no key: its SVID, presented as its client certificate, lets
        # it poll its own view.
        p = HttpsProxy(c.url, pki.ca, "web", ["--join-token", out.stdout.strip()])
        procs.append(p)
        wait_for(lambda: requests.get(f"http://127.0.0.1:{port}/", timeout=5).text.strip() == "ok svid", 30,
                 what="the proxy serving the view it polled with its SVID")
        svid, svid_key = os.path.join(p.data_dir, "svid-web.crt"), os.path.join(p.data_dir, "svid-web.key")

        # The same SVID, used by curl: its own view only, and not the object API.
        def curl(path):
            r = subprocess.run(["curl", "-sS", "--cacert", pki.ca, "--cert", svid, "--key", svid_key,
                                "-o", "/dev/null", "-w", "%{http_code}", c.url + path],
                               capture_output=True, text=True, timeout=20)
            return r.stdout
        assert curl("/v1.0/xds/web?zone=zone-1&node=curl") == "200"
        assert curl("/v1.0/xds/api?zone=zone-1&node=curl") == "403"
        assert curl("/v1.0/xds/web?zone=zone-2&node=curl") == "403"
        assert curl("/v1.0/cluster") == "401"
        # A certificate from another CA is no SVID of this mesh: as if none was presented.
        r = subprocess.run(["curl", "-sS", "--cacert", pki.ca, "--cert", crt, "--key", key, c.url + "/v1.0/xds/web"],
                           capture_output=True, text=True, timeout=20)
        assert "authentication required" in r.stdout, r.stdout

        # Without a token or a key, a proxy is refused and says why; with a key, it is served.
        nokey = HttpsProxy(c.url, pki.ca, "web", node="no-key")
        procs.append(nokey)
        keyed_proxy = HttpsProxy(c.url, pki.ca, "web", node="with-key", env={**os.environ, "GYRUS_API_KEY": KEY1})
        procs.append(keyed_proxy)
        wait_for(lambda: "HTTP 401: authentication required" in nokey.output(), 15, what="the 401 logged: " + nokey.output()[-600:])
        assert nokey.alive()

        def acked(node):
            rows = [row for row in requests.get(c.url + "/v1.0/status", headers={"Authorization": f"Bearer {KEY1}"},
                                                verify=pki.ca, timeout=5).json()["result"]["proxies"]
                    if row["node"] == node]
            return rows and rows[0]["status"] == "ACK"
        wait_for(lambda: acked("with-key"), 15, what="the keyed proxy's ACK")
        assert acked("web-node") and not acked("no-key")
    finally:
        for p in procs:
            p.check_clean_exit()
            p.cleanup()
        c.check_clean_exit()
