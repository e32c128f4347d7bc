"""End to end: `gyrus proxy --control` fed by `gyrus control`: the view is applied and ACKed,
weight changes reach the traffic with zero failed requests, a NACK shows in `gyrus status`,
traffic survives the control plane going away, and a proxy restarted meanwhile serves from its
cache. Skipped when the binary's proxy has no --control yet."""
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time

import pytest
import requests

from control_fixtures import cli_env, control, control_factory, run_cli, to_yaml_file  # noqa: F401
from conftest import GYRUS, Process, free_port, wait_for


def proxy_has_control():
    out = subprocess.run([GYRUS, "proxy", "--help"], capture_output=True, text=True, timeout=10)
    return "--control" in out.stdout


pytestmark = pytest.mark.skipif(not proxy_has_control(), reason="gyrus proxy has no --control yet")


class ControlledProxy(Process):
    def __init__(self, control_url, name, node, data_dir=None):
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="gyrus-proxy-")
        self.admin_port = free_port()
        super().__init__([GYRUS, "proxy", "--control", control_url, "--name", name, "--node", node,
                          "--data-dir", self.data_dir, "--workers", "1", "--admin", f"127.0.0.1:{self.admin_port}",
                          "--drain-time", "2s"], f"proxy-{node}")

    def cleanup(self):
        shutil.rmtree(self.data_dir, ignore_errors=True)


def mesh(port, backends, weights):
    return [
        {"kind": "zone", "zone_key": "z"},
        {"kind": "listener", "listener_key": "in", "name": "in", "ip": "127.0.0.1", "port": port,
         "domain_keys": ["in"], "zone_key": "z"},
        {"kind": "domain", "domain_key": "in", "name": "*", "port": port, "zone_key": "z"},
        {"kind": "proxy", "proxy_key": "svc", "name": "svc", "listener_keys": ["in"], "zone_key": "z"},
        *[{"kind": "cluster", "cluster_key": f"c{i}", "name": f"c{i}", "zone_key": "z",
           "instances": [{"host": "127.0.0.1", "port": b.port}]} for i, b in enumerate(backends)],
        {"kind": "route", "route_key": "root", "domain_key": "in", "zone_key": "z",
         "route_match": {"path": "/", "match_type": "prefix"},
         "rules": [{"constraints": {"light": [{"cluster_key": f"c{i}", "weight": w}
                                              for i, w in enumerate(weights) if w > 0]}}]},
    ]


def served_by(port, n=40):
    seen = {}
    for _ in range(n):
        r = requests.get(f"http://127.0.0.1:{port}/x", timeout=5)
        assert r.status_code == 200
        seen[r.text.strip()] = seen.get(r.text.strip(), 0) + 1
    return seen


def status_row(control, node):
    for p in control.status()["proxies"]:
        if p["node"] == node:
            return p
    return None


def test_proxy_follows_the_control_plane(control_factory, backend_factory, tmp_path):
    b0, b1 = backend_factory("zero"), backend_factory("one")
    port = free_port()
    data = str(tmp_path / "control")
    c = control_factory(data_dir=data)
    c.apply(mesh(port, [b0, b1], [1, 0]))
    p = ControlledProxy(c.url, "svc", "node-1")
    try:
        wait_for(lambda: served_by(port, 5) == {"ok zero": 5}, 15, what="proxy serving its view")
        wait_for(lambda: (status_row(c, "node-1") or {}).get("status") == "ACK", 10, what="ACK")
        assert status_row(c, "node-1")["in_sync"]
        # The proxy polls with its own HTTP client: libcurl (and what it pulls in) is never loaded.
        with open(f"/proc/{p.proc.pid}/maps") as f:
            maps = f.read()
        assert "libcurl" not in maps and "libssh" not in maps and "libldap" not in maps

        # Weights change under traffic: no failed request, the split follows.
        failures, stop = [], threading.Event()

        def traffic():
            s = requests.Session()
            while not stop.is_set():
                try:
                    if s.get(f"http://127.0.0.1:{port}/x", timeout=5).status_code != 200:
                        failures.append("status")
                except requests.RequestException as e:
                    failures.append(repr(e))
        t = threading.Thread(target=traffic)
        t.start()
        path = to_yaml_file(tmp_path / "weights.yaml", mesh(port, [b0, b1], [0, 1]))
        out = run_cli("apply", "-f", path, env=cli_env(c))
        assert out.returncode == 0, out.stderr
        wait_for(lambda: served_by(port, 5) == {"ok one": 5}, 10, what="new weights")
        stop.set()
        t.join(10)
        assert failures == []

        # A view the proxy cannot apply (its port is taken): NACK, shown by `gyrus status`.
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            m = mesh(port, [b0, b1], [0, 1])
            m.append({"kind": "listener", "listener_key": "busy", "name": "busy", "ip": "127.0.0.1",
                      "port": busy.getsockname()[1], "zone_key": "z"})
            m[3] = dict(m[3], listener_keys=["in", "busy"])
            c.apply(m)
            wait_for(lambda: (status_row(c, "node-1") or {}).get("status") == "NACK", 10, what="NACK")
            out = run_cli("status", env=cli_env(c))
            assert "NACK" in out.stdout and "Address already in use" in out.stdout
            assert served_by(port, 5) == {"ok one": 5}  # the running config stays

        # The control plane goes away: traffic continues; a restarted proxy serves from its cache.
        c.apply(mesh(port, [b0, b1], [0, 1]), prune=True)
        wait_for(lambda: (status_row(c, "node-1") or {}).get("status") == "ACK", 10, what="ACK again")
        c.check_clean_exit()
        assert served_by(port, 10) == {"ok one": 10}
        p.check_clean_exit()
        p2 = ControlledProxy(c.url, "svc", "node-1", data_dir=p.data_dir)
        try:
            wait_for(lambda: served_by(port, 5) == {"ok one": 5}, 15, what="proxy serving from its cache")
        finally:
            p2.check_clean_exit()
    finally:
        p.stop()
        p.cleanup()


class ScriptedControl:
    """A control plane that is not one: answers each poll with the next scripted bytes (a view,
    an error, garbage, a close), then holds further polls for a second and answers 304. Records
    each request line."""

    def __init__(self, answers):
        self.answers = list(answers)
        self.requests = []
        self.lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(c,), daemon=True).start()

    def _one(self, c):
        with c:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = c.recv(4096)
                if not chunk:
                    return
                data += chunk
            with self.lock:
                self.requests.append(data.split(b"\r\n", 1)[0].decode())
                answer = self.answers.pop(0) if self.answers else None
            if answer is None:
                time.sleep(1)
                answer = b"HTTP/1.1 304 Not Modified\r\n\r\n"
            if answer:
                c.sendall(answer)

    def stop(self):
        self.sock.close()


def view_answer(version, objects, chunked=False):
    import json
    body = json.dumps({"version": version, "objects": objects}).encode()
    if not chunked:
        return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    half = len(body) // 2
    return (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n"
            % (half, body[:half], len(body) - half, body[half:]))


def test_proxy_client_survives_a_bad_control_plane(backend_factory):
    """The proxy's own HTTP client against a control plane that misbehaves: an HTTP error, bytes
    that are not HTTP, a close before any answer, a body cut short, a body that is no view. Each
    is logged once with its reason, traffic goes on with the last good view, and a good view
    (chunked) after them is applied and ACKed in the next poll."""
    b0, b1 = backend_factory("zero"), backend_factory("one")
    port = free_port()
    cp = ScriptedControl([
        view_answer("v1", mesh(port, [b0, b1], [1, 0])),
        b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 9\r\n\r\nexploded!",
        b"SSH-2.0-OpenSSH_9.2\r\n\r\n",
        b"",  # closes without an answer
        b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n{\"version\":",  # one byte short, then a close
        b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n{\"version\":",  # whole, but no view
        view_answer("v2", mesh(port, [b0, b1], [0, 1]), chunked=True),
    ])
    p = ControlledProxy(cp.url, "svc", "node-bad-cp")
    try:
        wait_for(lambda: served_by(port, 3) == {"ok zero": 3}, 15, what="the first view")
        wait_for(lambda: served_by(port, 3) == {"ok one": 3}, 20, what="the chunked view after the bad answers")
        wait_for(lambda: any("version=v2" in r and "status=ack" in r for r in cp.requests), 10, what="ACK of v2")
        out = p.output()
        lines = [line for line in out.splitlines() if f"control plane {cp.url}: " in line]
        for reason in ("HTTP 500: exploded!", "malformed answer: invalid HTTP version in status line",
                       "connection closed before an answer", "connection closed in the middle of the answer",
                       "malformed view"):
            assert sum(reason in line for line in lines) == 1, (reason, lines)
        assert "serving the last good config and retrying" in out
        assert p.alive()
        assert cp.requests[0].startswith("GET /v1.0/xds/svc?zone=&node=node-bad-cp&version=&wait=30 HTTP/1.1")
    finally:
        p.stop()
        p.cleanup()
        cp.stop()
