"""The control API over HTTPS (`gyrus control --tls-cert/--tls-key`): real clients (Python's ssl,
curl, the gyrus CLI on libcurl, `gyrus proxy` on its own client) verify the control plane against
a CA, a plain HTTP request on the TLS port is told to use https://, a certificate replaced on disk
is served to new connections (a bad replacement is refused and logged), and proxies that cannot
verify the control plane refuse it with the reason and take nothing from it."""
import os
import shutil
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


def served_cn(port):
    """The CN of the certificate a new connection to the port gets (not verified: just looked at)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s, ctx.wrap_socket(s) as t:
        der = t.getpeercert(binary_form=True)
    text = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-subject"], input=der,
                          capture_output=True, timeout=10).stdout.decode()
    return text.strip().rsplit("=", 1)[-1].strip()


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
    def __init__(self, url, ca, name, extra=()):
        self.data_dir = tempfile.mkdtemp(prefix="gyrus-proxy-")
        self.admin_port = free_port()
        args = [GYRUS, "proxy", "--control", url, "--name", name, "--zone", "zone-1", "--node", f"{name}-node",
                "--data-dir", self.data_dir, "--workers", "1", "--admin", f"127.0.0.1:{self.admin_port}", *extra]
        if ca:
            args += ["--control-ca", ca]
        super().__init__(args, f"proxy-{name}")

    def cleanup(self):
        shutil.rmtree(self.data_dir, ignore_errors=True)


def test_proxy_follows_an_https_control_plane(control_factory, backend_factory, pki):
    crt, key = pki.server("control")
    c = control_factory(tls=(crt, key, pki.ca))
    b = backend_factory("over-tls")
    port = free_port()
    c.apply(simple_mesh(port, [b.port], name="web"))
    out = run_cli("token", "create", "--service", "web", "--control", c.url, "--control-ca", pki.ca)
    assert out.returncode == 0, out.stderr
    p = HttpsProxy(c.url, pki.ca, "web", ["--join-token", out.stdout.strip()])
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
