"""The proxy's own client (the config long poll, certificate signing) finds the control plane by
name through the system's resolvers, and a resolver that never answers does not hold up the
proxy: the lookup ends when the proxy stops.

Each proxy runs in a mount namespace of its own (`unshare --mount`) where /etc/resolv.conf is a
file of the test's, naming a DNS server on a loopback address of its own, port 53."""
import random
import signal
import socket
import subprocess
import time

import pytest
import requests

from control_fixtures import control, control_factory  # noqa: F401
from conftest import GYRUS, Process, free_port, wait_for
from dns_server import DnsServer


def can_unshare_mounts():
    return subprocess.run(["unshare", "--mount", "true"], capture_output=True, timeout=10).returncode == 0


pytestmark = pytest.mark.skipif(not can_unshare_mounts(), reason="needs root to make a mount namespace (unshare)")


def loopback_53():
    """A loopback address whose port 53 is free, for one test's resolver."""
    for _ in range(50):
        addr = f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.53"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.bind((addr, 53))
            except OSError:
                continue
        return addr
    raise RuntimeError("no free loopback address for port 53")


class ProxyWithResolver(Process):
    def __init__(self, resolv_conf, control_url, tmp_path):
        self.admin_port = free_port()
        super().__init__(["unshare", "--mount", "sh", "-c", 'mount --bind "$0" /etc/resolv.conf && exec "$@"',
                          str(resolv_conf), GYRUS, "proxy", "--control", control_url, "--name", "svc",
                          "--node", "n1", "--data-dir", str(tmp_path / "proxy"), "--workers", "1",
                          "--admin", f"127.0.0.1:{self.admin_port}", "--drain-time", "1s"], "proxy-resolver")


def resolv_conf(tmp_path, addr):
    # A resolver that waited for its answer would wait 30 s for each of A and AAAA.
    path = tmp_path / "resolv.conf"
    path.write_text(f"nameserver {addr}\noptions timeout:30 attempts:1\n")
    return path


def mesh(port, backend_port):
    return [
        {"kind": "listener", "listener_key": "in", "name": "in", "ip": "127.0.0.1", "port": port,
         "domain_keys": ["in"]},
        {"kind": "domain", "domain_key": "in", "name": "*", "port": port},
        {"kind": "proxy", "proxy_key": "svc", "name": "svc", "listener_keys": ["in"]},
        {"kind": "cluster", "cluster_key": "c", "name": "c",
         "instances": [{"host": "127.0.0.1", "port": backend_port}]},
        {"kind": "route", "route_key": "root", "domain_key": "in", "route_match": {"path": "/", "match_type": "prefix"},
         "rules": [{"constraints": {"light": [{"cluster_key": "c", "weight": 1}]}}]},
    ]


def test_control_plane_found_by_name(control, backend_factory, tmp_path):
    addr = loopback_53()
    dns = DnsServer(port=53, host=addr)
    dns.set("cp.gyrus.test", "A", [("127.0.0.1", 60)])
    be = backend_factory("named")
    port = free_port()
    control.apply(mesh(port, be.port))
    p = ProxyWithResolver(resolv_conf(tmp_path, addr), f"http://cp.gyrus.test:{control.port}", tmp_path)
    try:
        wait_for(lambda: requests.get(f"http://127.0.0.1:{port}/", timeout=5).text == "ok named\n", 20,
                 what="the proxy serving the view it found by name")
        assert dns.count("cp.gyrus.test", "A") >= 1
        p.check_clean_exit()
    finally:
        p.stop()
        dns.stop()


def test_a_silent_resolver_does_not_hold_up_shutdown(tmp_path):
    addr = loopback_53()
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind((addr, 53))
    silent.settimeout(20)
    p = ProxyWithResolver(resolv_conf(tmp_path, addr), "http://cp.gyrus.test:1", tmp_path)
    try:
        query, _ = silent.recvfrom(512)  # the proxy is waiting for its answer now
        assert b"\x02cp\x05gyrus\x04test\x00" in query
        t0 = time.monotonic()
        p.signal(signal.SIGTERM)
        rc = p.proc.wait(timeout=25)
        took = time.monotonic() - t0
        assert rc == 0, p.output()[-2000:]
        # getaddrinfo would not return before the resolver's 30 s timeout: the lookup was ended
        assert took < 10, f"{took:.1f} s to stop"
        p.check_clean_exit()
    finally:
        p.stop()
        silent.close()


def test_a_name_that_does_not_resolve_is_reported(tmp_path):
    addr = loopback_53()
    dns = DnsServer(port=53, host=addr)  # knows no name: NXDOMAIN
    p = ProxyWithResolver(resolv_conf(tmp_path, addr), "http://nowhere.gyrus.test:1", tmp_path)
    try:
        wait_for(lambda: "cannot resolve nowhere.gyrus.test" in p.output(), 15, what="the resolver's answer logged")
        assert p.alive()
        p.check_clean_exit()
    finally:
        p.stop()
        dns.stop()
