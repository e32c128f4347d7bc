"""The binary's commands as a user meets them: errors are one clear line, `gyrus dev` runs a mesh."""
import json
import os
import re
import signal
import socket
import subprocess
import time

import pytest
import requests

from conftest import GYRUS, ROOT, Process, free_port, sanitizer_findings, simple_mesh, to_yaml, wait_for


def run(*args, timeout=10):
    return subprocess.run([GYRUS, *args], capture_output=True, timeout=timeout, text=True)


def test_version_and_help():
    out = run("version")
    assert out.returncode == 0 and out.stdout.startswith("gyrus ")
    assert run("--help").returncode == 0
    out = run("proxy", "--help")
    assert out.returncode == 0 and "--config" in out.stdout


@pytest.mark.parametrize("args,message", [
    (("frobnicate",), 'gyrus: error: unknown command "frobnicate" (try \'gyrus --help\')'),
    (("proxy",), "proxy: error: --config FILE or --control URL is required"),
    (("proxy", "--config", "x.yaml"), "proxy: error: --name is required (the proxy object to serve)"),
    (("proxy", "--bogus"), "proxy: error: unknown option --bogus (see --help)"),
    (("proxy", "--workers", "0"), 'proxy: error: --workers: want a number from 1 to 256, got "0"'),
    (("proxy", "--drain-time", "soon"), 'proxy: error: --drain-time: want a duration like 250ms, 10s or 2m, got "soon"'),
    (("proxy", "--config", "/nonexistent.yaml", "--name", "x"), "proxy: error: /nonexistent.yaml: No such file or directory"),
    (("proxy", "--control", "ftp://cp.example:5555", "--name", "x", "--admin", "off"),
     "proxy: error: --control ftp://cp.example:5555: want an http:// or https:// URL"),
    (("proxy", "--control", "https://cp.example:5555", "--control-ca", "/nonexistent/ca.pem", "--name", "x",
      "--admin", "off"), "proxy: error: --control-ca: /nonexistent/ca.pem: cannot load trust anchors: No such file or directory"),
    (("get", "zones", "--control", "http://127.0.0.1:1", "--control-ca", "/tmp/ca.pem"),
     "get: error: --control-ca is for an https:// control plane, not http://127.0.0.1:1"),
])
def test_bad_flags_one_line(args, message):
    out = run(*args)
    assert out.returncode != 0
    assert out.stderr.strip() == message


@pytest.mark.parametrize("mutate,message", [
    (lambda m: m[3]["instances"][0].update(port=0),
     'cluster "backend": instances[0].port: must be between 1 and 65535, got 0'),
    (lambda m: m[4]["rules"][0]["constraints"]["light"][0].update(cluster_key="pay"),
     'route "root": rules[0].constraints.light[0].cluster_key: no cluster "pay"'),
    (lambda m: m[0].update(protocol="udp"),
     'listener "ingress": protocol: must be one of http_auto, http, http2, tcp, got "udp"'),
    (lambda m: m[1].update(nmae="x"), 'domain "ingress": unknown field "nmae"'),
    (lambda m: m.append(dict(m[3])), 'cluster "backend": duplicate cluster_key (also object 3)'),
])
def test_invalid_mesh_refuses_to_start(tmp_path, mutate, message):
    mesh = simple_mesh(free_port(), [1])
    mutate(mesh)
    path = tmp_path / "mesh.yaml"
    path.write_text(to_yaml(mesh))
    out = run("proxy", "--config", str(path), "--name", "test", "--admin", "off")
    assert out.returncode == 1
    assert out.stderr.strip() == f"proxy: error: {message}", out.stderr
    out = run("validate", str(path))
    assert out.returncode == 1 and message in out.stderr


def test_yaml_syntax_error_names_line(tmp_path):
    path = tmp_path / "mesh.yaml"
    path.write_text("- kind: zone\n  zone_key: z\n - broken: [\n")
    out = run("validate", str(path))
    assert out.returncode == 1
    assert out.stderr.startswith(f"validate: error: {path}:3:")


def test_unknown_proxy_and_busy_port(tmp_path):
    port = free_port()
    path = tmp_path / "mesh.yaml"
    path.write_text(to_yaml(simple_mesh(port, [1])))
    out = run("proxy", "--config", str(path), "--name", "nobody", "--admin", "off")
    assert out.returncode == 1 and 'proxy "nobody"' in out.stderr
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
        s.listen()
        out = run("proxy", "--config", str(path), "--name", "test", "--admin", "off")
    assert out.returncode == 1
    assert f'listener "ingress": cannot listen on 127.0.0.1:{port}: Address already in use' in out.stderr


def test_examples_validate():
    for name in ("mesh.yaml", "mesh.json"):
        for proxy in ("echo", "edge"):
            out = run("validate", os.path.join(ROOT, "examples", name), "--name", proxy)
            assert out.returncode == 0, out.stderr


def test_readme_tour_example(tmp_path):
    """The tour: a demo service, the example mesh's sidecar in front of it, curl, metrics.
    The example's fixed ports (8080, 10808, 10080) are swapped for free ones, nothing else."""
    svc, sidecar, edge, admin = free_port(), free_port(), free_port(), free_port()
    with open(os.path.join(ROOT, "examples", "mesh.yaml")) as f:
        text = f.read()
    text = text.replace("port: 8080", f"port: {svc}").replace("port: 10808", f"port: {sidecar}")
    text = text.replace("port: 10080", f"port: {edge}")
    mesh = tmp_path / "mesh.yaml"
    mesh.write_text(text)
    demo = Process([GYRUS, "demo-service", "--listen", f"127.0.0.1:{svc}"], "tour-demo")
    proxy = Process([GYRUS, "proxy", "--config", str(mesh), "--name", "echo", "--admin", f"127.0.0.1:{admin}"],
                    "tour-proxy")
    try:
        wait_for(lambda: requests.get(f"http://127.0.0.1:{admin}/ready", timeout=1).status_code == 200, 10,
                 what="tour proxy")
        wait_for(lambda: requests.get(f"http://127.0.0.1:{svc}/healthz", timeout=1).status_code == 200, 10,
                 what="demo service")
        r = requests.get(f"http://127.0.0.1:{sidecar}/echo", timeout=5)
        assert r.status_code == 200 and r.json()["path"] == "/echo"
        metrics = requests.get(f"http://127.0.0.1:{admin}/stats/prometheus", timeout=5).text
        assert 'gyrus_listener_downstream_rq_total{listener="echo-ingress",status_class="2xx"} 1' in metrics
    finally:
        proxy.check_clean_exit()
        demo.check_clean_exit()


def free_port_block(n):
    """A base port below the ephemeral range with n free ports above it."""
    import random
    for _ in range(200):
        base = random.randrange(20000, 32000)
        socks = []
        try:
            for port in range(base, base + n):
                s = socket.socket()
                s.bind(("127.0.0.1", port))
                socks.append(s)
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise AssertionError("no free block of ports")


def test_gyrus_dev_runs_and_stops_cleanly():
    base = free_port_block(13)
    p = subprocess.Popen([GYRUS, "dev", "--port-base", str(base)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True, start_new_session=True)
    try:
        banner = ""
        deadline = time.monotonic() + 30
        while "Ctrl-C" not in banner and time.monotonic() < deadline:
            line = p.stdout.readline()
            if not line:
                break
            banner += line
        assert f"http://127.0.0.1:{base}/" in banner, banner
        # The control plane serves HTTPS with a certificate from its own CA; the banner says where its root is.
        ca = re.search(r"control plane: https://127\.0\.0\.1:(\d+)/  \(its CA's root: (\S+)\)", banner)
        assert ca and int(ca.group(1)) == base + 5, banner
        ca = ca.group(2)
        r = requests.get(f"http://127.0.0.1:{base}/services/echo/echo", timeout=5)
        assert r.status_code == 200 and r.json()["service"] == "echo" and r.json()["path"] == "/echo"
        r = requests.get(f"http://127.0.0.1:{base}/services/fibonacci/fib/30", timeout=5)
        assert r.json()["fib"] == 832040
        assert requests.get(f"http://127.0.0.1:{base + 10}/ready", timeout=5).status_code == 200
        # The proxies got their config from the control plane and the sidecars came from discovery.
        status = run("status", "--control", f"https://127.0.0.1:{base + 5}", "--control-ca", ca).stdout
        assert all(f"{name} " in status for name in ("echo", "fibonacci", "edge")), status
        assert status.count("ACK") >= 3, status
        assert "DISCOVERED" in status and "ok, 4 clusters, 4 instances" in status, status
        # Zero trust out of the box: every proxy holds an SVID, the edge reached the echo sidecar
        # over mTLS, and the sidecar refuses plain HTTP.
        certs = requests.get(f"http://127.0.0.1:{base + 11}/certs", timeout=5).json()
        assert certs["svid"]["spiffe_id"] == "spiffe://gyrus.local/dev/echo"
        prom = requests.get(f"http://127.0.0.1:{base + 10}/stats/prometheus", timeout=5).text
        handshakes = [float(line.split()[-1]) for line in prom.splitlines()
                      if line.startswith('gyrus_tls_handshakes_total{cluster="echo"} ')]
        assert handshakes and handshakes[0] >= 1, prom
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(f"http://127.0.0.1:{base + 1}/echo", timeout=5)
        # The proxies polled and joined over HTTPS; plain HTTP to the control plane is turned away.
        assert requests.get(f"https://127.0.0.1:{base + 5}/ready", verify=ca, timeout=5).status_code == 200
        plain = requests.get(f"http://127.0.0.1:{base + 5}/ready", timeout=5)
        assert plain.status_code == 400 and "use https://" in plain.json()["error"]["message"]
        children = subprocess.run(["pgrep", "-P", str(p.pid)], capture_output=True, text=True).stdout.split()
        assert len(children) == 6
        os.killpg(p.pid, signal.SIGINT)  # Ctrl-C reaches the whole foreground group
        rest, _ = p.communicate(timeout=30)
        assert p.returncode == 0, rest
        assert "gyrus dev: stopped" in rest
        assert not sanitizer_findings(rest), rest
        for pid in children:
            assert not os.path.exists(f"/proc/{pid}"), f"child {pid} left behind"
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def test_keepalive_idle_timeouts(gyrus_factory, backend_factory):
    be = backend_factory()
    port = free_port()
    g = gyrus_factory(simple_mesh(port, [be.port], listener_extra={"idle_timeout": "500ms"},
                                  cluster_extra={"idle_timeout": "500ms"}), "test")
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while not data.endswith(b"ok backend\n"):
            data += s.recv(4096)
        t0 = time.monotonic()
        assert s.recv(10) == b""  # the idle keep-alive connection is closed by the proxy
        assert 0.3 < time.monotonic() - t0 < 3
    wait_for(lambda: g.metric("gyrus_cluster_upstream_cx_active", cluster="backend") == 0, 5,
             what="idle upstream connection closed")
    assert g.metric("gyrus_cluster_upstream_cx_idle", cluster="backend") == 0
