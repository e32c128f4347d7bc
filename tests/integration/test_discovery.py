"""Discovery sources through `gyrus discover`: what each source sees reaches the output.

Each test runs `gyrus discover SPEC...` and reads its JSON lines {"source", "snapshot"}. The file
and DNS sources run against real files and a small DNS server (dns_server.py), etcd against a
real etcd; Consul and Kubernetes cannot run here, so they are driven by recorded API responses
replayed by replay_server.py. Every wait is bounded.
"""
import base64
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request

import pytest

from conftest import GYRUS, Process, free_port, wait_for
from dns_server import DnsServer
from replay_server import ReplayServer, fixture

ETCD = "/usr/bin/etcd"


# ---- gyrus discover ----

class Discover(Process):
    def __init__(self, *specs, env=None):
        self.specs = specs
        super().__init__([GYRUS, "discover", *specs], "discover", env=env)

    def updates(self, source=None):
        out = []
        for line in self.output().splitlines():
            if not line.startswith("{"):
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict) and "snapshot" in obj and "source" in obj:
                if source is None or obj["source"] == source:
                    out.append(obj["snapshot"])
        return out

    def latest(self, source):
        ups = self.updates(source)
        return ups[-1] if ups else None

    def wait(self, source, pred, timeout=15, what="snapshot"):
        """Waits until the latest snapshot of `source` satisfies pred; returns it."""
        def check():
            if not self.alive():
                raise AssertionError(f"gyrus discover exited ({self.proc.returncode}):\n{self.output()[-3000:]}")
            snap = self.latest(source)
            return snap is not None and pred(snap)
        try:
            wait_for(check, timeout, what=what)
        except AssertionError as e:
            raise AssertionError(f"{e}\nlatest: {self.latest(source)}\nlog:\n{self.output()[-3000:]}") from None
        return self.latest(source)

    def wait_log(self, text, timeout=15):
        wait_for(lambda: text in self.output(), timeout, what=f"log line with {text!r}")


@pytest.fixture
def discover():
    started = []

    def make(*specs, env=None):
        d = Discover(*specs, env=env)
        started.append(d)
        return d
    yield make
    for d in started:
        t0 = time.monotonic()
        d.check_clean_exit()
        assert time.monotonic() - t0 < 5, "gyrus discover took more than 5 s to stop"


def endpoints(snap, cluster):
    return sorted(f"{i['host']}:{i['port']}" for i in snap.get(cluster, []))


def has(cluster, *eps):
    return lambda snap: endpoints(snap, cluster) == sorted(eps)


def metadata(snap, cluster, host):
    inst = next(i for i in snap[cluster] if i["host"] == host)
    return {m["key"]: m["value"] for m in inst.get("metadata", [])}


# ---- bad specs ----

@pytest.mark.parametrize("spec,message", [
    ("nonsense", "unknown kind"),
    ("zookeeper:x", "unknown kind"),
    ("file:", "want file:PATH"),
    ("dns:api.example.com:8080", "want dns:NAME[:PORT]=CLUSTER"),
    ("dns:api.example.com:0=api", "port must be 1..65535"),
    ("dns:api.example.com:http=api", "port must be 1..65535"),
    ("dns:bad name=api", "is not a DNS name"),
    ("dns:api.example.com=", "no cluster name"),
    ("dns:api.example.com:80=api@localhost", "is not IP[:PORT]"),
    ("dns:api.example.com:80=api@127.0.0.1:99999", "is not IP[:PORT]"),
    ("etcd:127.0.0.1:2379/x", "not an http:// or https:// URL"),
    ("etcd:http://127.0.0.1:2379", "no key prefix"),
    ("etcd:http://127.0.0.1:2379/x?foo=1", "unknown option"),
    ("consul:localhost:8500", "not an http:// or https:// URL"),
    ("consul:http://127.0.0.1:8500?datacenter=x", "unknown option \"datacenter\""),
    ("consul:http://127.0.0.1:8500?dc=", "needs a value"),
    ("consul:http://127.0.0.1:8500?dc=a&dc=b", "given twice"),
    ("kubernetes:ftp://k8s", "not an http:// or https:// URL"),
    ("kubernetes:https://k8s:6443?namespace=Bad_NS", "not a valid name"),
    ("kubernetes:https://k8s:6443?port=a-very-long-port-name", "not a valid port name"),
    ("kubernetes:https://k8s:6443?label=a%20b", "not a valid label key"),
])
def test_bad_spec_is_one_line_and_exit_1(spec, message):
    out = subprocess.run([GYRUS, "discover", spec], capture_output=True, text=True, timeout=20)
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("discover: error: ") and message in lines[0], lines[0]
    assert out.stdout == ""


def test_bad_spec_after_good_ones_stops_them(tmp_path):
    good = tmp_path / "d.yaml"
    good.write_text("- cluster: a\n  instances: []\n")
    out = subprocess.run([GYRUS, "discover", f"file:{good}", "dns:x.test:80=x", "consul:nope"],
                         capture_output=True, text=True, timeout=20)
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == [
        'discover: error: discovery source "consul:nope": "nope" is not an http:// or https:// URL '
        "(want consul:http://HOST:PORT[?dc=DC])"]


def test_no_spec():
    out = subprocess.run([GYRUS, "discover"], capture_output=True, text=True, timeout=20)
    assert out.returncode == 1 and "no discovery source given" in out.stderr


# ---- file ----

def write(path, text):
    tmp = str(path) + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


def test_file_yaml_add_remove(tmp_path, discover):
    path = tmp_path / "instances.yaml"
    write(path, """# Grey Matter flat file
- cluster: api
  instances:
  - host: 127.0.0.1
    port: 8080
    metadata:
    - {key: version, value: v1}
- cluster: web
  instances: []
""")
    src = f"file:{path}"
    d = discover(src)
    snap = d.wait(src, has("api", "127.0.0.1:8080"))
    assert snap["web"] == [] and metadata(snap, "api", "127.0.0.1") == {"version": "v1"}
    write(path, """---
- cluster: api
  instances:
  - {host: 127.0.0.1, port: 8080}
  - {host: 127.0.0.2, port: 8080}
""")
    snap = d.wait(src, has("api", "127.0.0.1:8080", "127.0.0.2:8080"), what="added instance")
    assert "web" not in snap
    write(path, "- cluster: api\n  instances:\n  - {host: 127.0.0.2, port: 8080}\n")
    d.wait(src, has("api", "127.0.0.2:8080"), what="removed instance")


def test_file_json_rewritten_in_place(tmp_path, discover):
    path = tmp_path / "instances.json"
    path.write_text(json.dumps([{"cluster": "api", "instances": [{"host": "10.0.0.1", "port": 80}]}]))
    src = f"file:{path}"
    d = discover(src)
    d.wait(src, has("api", "10.0.0.1:80"))
    # Same size, same second, same inode: still seen.
    path.write_text(json.dumps([{"cluster": "api", "instances": [{"host": "10.0.0.2", "port": 80}]}]))
    d.wait(src, has("api", "10.0.0.2:80"), what="in-place rewrite")


def test_file_broken_keeps_last_good_then_fixed(tmp_path, discover):
    path = tmp_path / "instances.yaml"
    write(path, "- cluster: api\n  instances:\n  - {host: 10.0.0.1, port: 80}\n")
    src = f"file:{path}"
    d = discover(src)
    d.wait(src, has("api", "10.0.0.1:80"))
    write(path, "- cluster: api\n  instances:\n  - {host: 10.0.0.2, port: [\n  - x\n")
    # the parser's reason, with the file's own line numbers
    d.wait_log(f"{path}:4:3: did not find expected node content (while parsing a flow node at line 4, column 3)")
    write(path, "- cluster: api\n  instances:\n  - {host: 10.0.0.2, port: 70000}\n")
    d.wait_log('instances[0]: "port" must be an integer from 1 to 65535')
    write(path, "")
    d.wait_log("empty (write [] for a file with no instances)")
    time.sleep(1.2)
    assert len(d.updates(src)) == 1, "a broken file must not change the snapshot"
    write(path, "[]")
    d.wait(src, lambda s: s == {}, what="fixed file")
    write(path, "- cluster: api\n  instances:\n  - {host: 10.0.0.3, port: 80}\n")
    d.wait(src, has("api", "10.0.0.3:80"))
    out = d.output()
    assert out.count("must be an integer from 1 to 65535") == 1, "a reason is logged once, not per poll"


def test_file_missing_then_created(tmp_path, discover):
    path = tmp_path / "later.yaml"
    src = f"file:{path}"
    d = discover(src)
    d.wait_log("No such file or directory; retrying")
    assert d.updates(src) == []
    write(path, "- cluster: late\n  instances: [{host: 10.9.9.9, port: 9}]\n")
    d.wait(src, has("late", "10.9.9.9:9"))


# ---- DNS ----

@pytest.fixture
def dns():
    s = DnsServer(negative_ttl=1)
    yield s
    s.stop()


def test_dns_a_aaaa_add_remove(dns, discover):
    dns.set("api.gyrus.test", "A", [("127.0.0.2", 1), ("127.0.0.3", 1)])
    dns.set("api.gyrus.test", "AAAA", [("::1", 1)])
    src = f"dns:api.gyrus.test:8080=api@127.0.0.1:{dns.port}"
    d = discover(src)
    d.wait(src, has("api", "127.0.0.2:8080", "127.0.0.3:8080", "::1:8080"))
    dns.set("api.gyrus.test", "A", [("127.0.0.2", 1)])
    d.wait(src, has("api", "127.0.0.2:8080", "::1:8080"), what="removed A record")
    dns.set("api.gyrus.test", "A", [("127.0.0.2", 1), ("127.0.0.4", 1)])
    dns.set("api.gyrus.test", "AAAA", [])
    d.wait(src, has("api", "127.0.0.2:8080", "127.0.0.4:8080"), what="added A, removed AAAA")
    dns.remove("api.gyrus.test")
    d.wait(src, has("api"), what="NXDOMAIN: no instances")


def test_dns_srv(dns, discover):
    dns.set("_http._tcp.web.gyrus.test", "SRV", [(10, 5, 8081, "w1.gyrus.test", 1), (10, 5, 8082, "w2.gyrus.test", 1)])
    dns.set("w1.gyrus.test", "A", [("127.0.1.1", 60)])
    dns.set("w2.gyrus.test", "AAAA", [("fd00::2", 60)])
    src = f"dns:_http._tcp.web.gyrus.test=web@127.0.0.1:{dns.port}"
    d = discover(src)
    d.wait(src, has("web", "127.0.1.1:8081", "fd00::2:8082"))
    dns.set("_http._tcp.web.gyrus.test", "SRV", [(10, 5, 8081, "w1.gyrus.test", 1)])
    d.wait(src, has("web", "127.0.1.1:8081"), what="removed SRV target")


def test_dns_truncated_answer_over_tcp(dns, discover):
    many = [(f"127.0.2.{i}", 30) for i in range(1, 61)]  # 60 A records: more than 512 bytes
    dns.set("big.gyrus.test", "A", many)
    dns.set("big.gyrus.test", "AAAA", [])
    src = f"dns:big.gyrus.test:80=big@127.0.0.1:{dns.port}"
    d = discover(src)
    d.wait(src, lambda s: len(s.get("big", [])) == 60)
    assert dns.tcp_queries >= 1


def test_dns_respects_ttl(dns, discover):
    dns.set("slow.gyrus.test", "A", [("127.0.0.7", 300)])
    dns.set("slow.gyrus.test", "AAAA", [("::7", 300)])
    dns.set("fast.gyrus.test", "A", [("127.0.0.8", 1)])
    dns.set("fast.gyrus.test", "AAAA", [("::8", 1)])
    slow = f"dns:slow.gyrus.test:80=slow@127.0.0.1:{dns.port}"
    fast = f"dns:fast.gyrus.test:80=fast@127.0.0.1:{dns.port}"
    d = discover(slow, fast)
    d.wait(slow, has("slow", "127.0.0.7:80", "::7:80"))
    d.wait(fast, has("fast", "127.0.0.8:80", "::8:80"))
    time.sleep(3.5)
    assert dns.count("slow.gyrus.test", "A") == 1, "a 300 s TTL is not re-resolved after 3 s"
    assert 3 <= dns.count("fast.gyrus.test", "A") <= 6, "a 1 s TTL is re-resolved about every second"


def test_dns_server_down_then_up(discover):
    port = free_port()
    src = f"dns:api.gyrus.test:80=api@127.0.0.1:{port}"
    d = discover(src)
    d.wait_log("retrying")
    assert d.updates(src) == []
    s = DnsServer(port=port)
    try:
        s.set("api.gyrus.test", "A", [("127.0.0.5", 1)])
        d.wait(src, has("api", "127.0.0.5:80"), timeout=20, what="recovery after the resolver came up")
        assert d.output().count("retrying") == 1, "a failure is logged once, not per retry"
    finally:
        s.stop()


# ---- etcd ----

class Etcd(Process):
    """A real single-member etcd with a temp data dir and free ports."""

    def __init__(self, client_port=None, peer_port=None, data_dir=None):
        self.client_port = client_port or free_port()
        self.peer_port = peer_port or free_port()
        self.dir = data_dir or tempfile.mkdtemp(prefix="gyrus-etcd-")
        client, peer = f"http://127.0.0.1:{self.client_port}", f"http://127.0.0.1:{self.peer_port}"
        super().__init__([ETCD, "--name", "gyrus-test", "--data-dir", os.path.join(self.dir, "data"),
                          "--listen-client-urls", client, "--advertise-client-urls", client,
                          "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                          "--initial-cluster", f"gyrus-test={peer}"], "etcd")
        self.url = client
        wait_for(lambda: json.loads(urllib.request.urlopen(client + "/health", timeout=2).read())["health"] == "true",
                 20, what="etcd /health")

    def call(self, path, body):
        req = urllib.request.Request(self.url + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=5) as r:
            return json.loads(r.read())

    def put(self, key, value):
        v = value if isinstance(value, str) else json.dumps(value)
        return self.call("/v3/kv/put", {"key": b64(key), "value": b64(v)})

    def delete(self, key):
        return self.call("/v3/kv/deleterange", {"key": b64(key)})

    def restart(self):
        self.stop()
        return Etcd(self.client_port, self.peer_port, self.dir)

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def b64(s):
    return base64.b64encode(s.encode()).decode()


@pytest.fixture
def etcd():
    if not os.path.exists(ETCD):
        pytest.fail("etcd is not installed (scripts/install-deps installs etcd-server)")
    e = Etcd()
    yield e
    e.cleanup()


def test_etcd_add_remove(etcd, discover):
    etcd.put("/gyrus/instances/api/a1", {"host": "127.0.0.1", "port": 8080, "metadata": [{"key": "version", "value": "v1"}]})
    etcd.put("/gyrus/other/api/zz", {"host": "10.0.0.99", "port": 1})  # outside the prefix
    src = f"etcd:{etcd.url}/gyrus/instances"
    d = discover(src)
    snap = d.wait(src, has("api", "127.0.0.1:8080"))
    assert metadata(snap, "api", "127.0.0.1") == {"version": "v1"}
    etcd.put("/gyrus/instances/api/a2", {"host": "127.0.0.2", "port": 8080})
    etcd.put("/gyrus/instances/web/w1", {"host": "127.0.0.3", "port": 9090, "metadata": {"zone": "b"}})
    snap = d.wait(src, lambda s: endpoints(s, "api") == ["127.0.0.1:8080", "127.0.0.2:8080"]
                  and endpoints(s, "web") == ["127.0.0.3:9090"], what="added instances")
    assert metadata(snap, "web", "127.0.0.3") == {"zone": "b"}
    etcd.put("/gyrus/instances/api/bad", "not json")
    etcd.put("/gyrus/instances/api/noport", {"host": "127.0.0.9"})
    d.wait_log("key /gyrus/instances/api/noport: \"port\" must be an integer")
    etcd.delete("/gyrus/instances/api/a1")
    d.wait(src, has("api", "127.0.0.2:8080"), what="removed instance")
    etcd.put("/gyrus/instances/api/a2", {"host": "127.0.0.2", "port": 8081})
    d.wait(src, has("api", "127.0.0.2:8081"), what="changed instance")
    assert "not JSON" in d.output()


def test_etcd_down_at_start_then_restarted(discover):
    port, peer = free_port(), free_port()
    src = f"etcd:http://127.0.0.1:{port}/svc"
    d = discover(src)
    d.wait_log("retrying")
    e = Etcd(port, peer)
    try:
        e.put("/svc/api/1", {"host": "127.0.0.1", "port": 1000})
        d.wait(src, has("api", "127.0.0.1:1000"), timeout=20, what="recovery after etcd came up")
        # The watch breaks when etcd goes away; the source re-syncs when it is back.
        e = e.restart()
        e.put("/svc/api/2", {"host": "127.0.0.2", "port": 1000})
        d.wait(src, has("api", "127.0.0.1:1000", "127.0.0.2:1000"), timeout=20, what="re-sync after a restart")
        ups = d.updates(src)
        first = next(i for i, u in enumerate(ups) if u.get("api"))
        assert all("127.0.0.1:1000" in endpoints(u, "api") for u in ups[first:]), "a restart must not drop instances"
    finally:
        e.cleanup()


# ---- Consul (recorded responses) ----

@pytest.fixture
def replay():
    servers = []

    def make(port=0, token=None):
        s = ReplayServer(port, token)
        servers.append(s)
        return s
    yield make
    for s in servers:
        s.stop()


def test_consul_catalog_blocking_queries(replay, discover):
    c = replay().start()
    c.load("consul/step1.json")
    src = f"consul:{c.url}"
    d = discover(src)
    snap = d.wait(src, lambda s: set(s) == {"api", "web"})
    # tagged services only, passing only; the address falls back to the node's
    assert endpoints(snap, "api") == ["10.1.0.12:8080", "127.0.0.11:8080"]
    assert endpoints(snap, "web") == ["127.0.0.21:9090"]
    assert metadata(snap, "api", "127.0.0.11") == {"metrics": "9102", "version": "v1", "zone": "us-east-1a",
                                                   "canary": ""}
    # Held, not polled: after the first answers, each query waits on the index it was given.
    time.sleep(1.0)
    health = c.requests_to("/v1/health/service/api")
    assert all("passing" in q for _, _, _, q, _ in health)
    assert [q.get("index") for _, _, _, q, _ in health] == ["0", "103"]
    assert all(q.get("wait") == "60s" for _, _, _, q, _ in health)
    assert not c.requests_to("/v1/health/service/legacy")

    c.load("consul/step2.json")  # api-3 passes now; web gone; pay added
    snap = d.wait(src, lambda s: set(s) == {"api", "pay"} and len(s["api"]) == 3, what="catalog and health change")
    assert endpoints(snap, "pay") == ["127.0.0.41:8443"]
    assert metadata(snap, "pay", "127.0.0.41") == {"version": "v3", "secure": "true"}
    c.load("consul/step3.json")  # api-1 deregistered: only the api health index moves
    d.wait(src, lambda s: endpoints(s, "api") == ["10.1.0.12:8080", "127.0.0.13:8080"], what="instance removed")
    wait_for(lambda: [q.get("index") for _, _, _, q, _ in c.requests_to("/v1/health/service/api")][-1] == "140",
             5, what="the next query on index 140")
    catalog = [q.get("index") for _, _, _, q, _ in c.requests_to("/v1/catalog/services")]
    assert catalog[:3] == ["0", "105", "131"]


def test_consul_down_then_up(replay, discover):
    port = free_port()
    src = f"consul:http://127.0.0.1:{port}?dc=dc1"
    d = discover(src)
    d.wait_log("catalog: Couldn't connect to server; retrying")
    c = replay(port).start()
    c.load("consul/step1.json")
    d.wait(src, lambda s: set(s) == {"api", "web"}, timeout=20, what="recovery after Consul came up")
    assert all(q.get("dc") == "dc1" for _, _, _, q, _ in c.requests)
    # Consul goes away mid-query: the last snapshot stays, and the source comes back with it.
    c.stop()
    d.wait_log("retrying (keeping the last snapshot)")
    c = replay(port).start()
    c.load("consul/step2.json")
    d.wait(src, lambda s: set(s) == {"api", "pay"}, timeout=20, what="recovery after a restart")


# ---- Kubernetes (recorded responses) ----

def test_kubernetes_list_watch(replay, discover):
    k = replay(token="s3cr3t").start()
    k.pod_list("kubernetes/pods_list.json")
    src = f"kubernetes:{k.url}?namespace=default"
    d = discover(src, env={**os.environ, "KUBERNETES_TOKEN": "s3cr3t"})
    snap = d.wait(src, lambda s: set(s) == {"api", "web"})
    # Ready pods with a port named "proxy": api-2 is not ready, batch has no such port
    assert endpoints(snap, "api") == ["10.244.1.11:10808"]
    assert endpoints(snap, "web") == ["10.244.2.21:10808"]
    assert metadata(snap, "api", "10.244.1.11") == {"app": "api", "version": "v1", "pod-template-hash": "7d9f8b6c5"}
    events = fixture("kubernetes/watch_events.json")
    k.event(events[0])  # ADDED api-3 (ready)
    d.wait(src, has("api", "10.244.1.11:10808", "10.244.1.13:10808"), what="ADDED")
    k.event(events[1])  # MODIFIED: api-2 ready
    d.wait(src, has("api", "10.244.1.11:10808", "10.244.1.12:10808", "10.244.1.13:10808"), what="MODIFIED")
    k.event(events[2])  # DELETED api-1
    d.wait(src, has("api", "10.244.1.12:10808", "10.244.1.13:10808"), what="DELETED")
    k.event(events[3])  # web-1 terminating
    d.wait(src, lambda s: "web" not in s, what="terminating pod")
    watches = [q for _, _, _, q, _ in k.requests_to("/api/v1/namespaces/default/pods") if q.get("watch")]
    assert watches and watches[0]["resourceVersion"] == "1000"
    assert all(h.get("authorization") == "Bearer s3cr3t" for *_, h in k.requests)


@pytest.mark.parametrize("as_http", [False, True])
def test_kubernetes_410_gone_relists(replay, discover, as_http):
    k = replay().start()
    k.pod_list("kubernetes/pods_list.json")
    src = f"kubernetes:{k.url}"
    d = discover(src)
    d.wait(src, lambda s: set(s) == {"api", "web"})
    events = fixture("kubernetes/watch_events.json")
    k.expire(as_http=as_http)
    k.event(events[0])  # happens while the source has to list again
    d.wait(src, has("api", "10.244.1.11:10808", "10.244.1.13:10808"), what="relist after 410")
    d.wait_log("410 Gone")
    lists = [q for _, _, _, q, _ in k.requests_to("/api/v1/namespaces/default/pods") if not q.get("watch")]
    assert len(lists) == 2


def test_kubernetes_down_then_up_and_label_port_options(replay, discover):
    port = free_port()
    src = f"kubernetes:http://127.0.0.1:{port}?label=app&port=http"
    d = discover(src)
    d.wait_log("list pods: Couldn't connect to server; retrying")
    k = replay(port).start()
    k.pod_list("kubernetes/pods_list.json")
    snap = d.wait(src, lambda s: "api" in s, timeout=20, what="recovery after the API server came up")
    assert endpoints(snap, "api") == ["10.244.1.11:8080"]  # the container port named http; redis has none
    assert endpoints(snap, "web") == ["10.244.2.21:3000"]
    assert set(snap) == {"api", "web"}


# ---- several at once ----

def test_several_sources_at_once(tmp_path, dns, etcd, replay, discover):
    path = tmp_path / "f.yaml"
    write(path, "- cluster: api\n  instances: [{host: 10.0.0.1, port: 80}]\n")
    dns.set("api.gyrus.test", "A", [("127.0.0.2", 1)])
    etcd.put("/mesh/api/e1", {"host": "127.0.0.3", "port": 80})
    c = replay().start()
    c.load("consul/step1.json")
    k = replay().start()
    k.pod_list("kubernetes/pods_list.json")
    specs = [f"file:{path}", f"dns:api.gyrus.test:80=api@127.0.0.1:{dns.port}", f"etcd:{etcd.url}/mesh",
             f"consul:{c.url}", f"kubernetes:{k.url}"]
    d = discover(*specs)
    d.wait(specs[0], has("api", "10.0.0.1:80"))
    d.wait(specs[1], has("api", "127.0.0.2:80"))
    d.wait(specs[2], has("api", "127.0.0.3:80"))
    d.wait(specs[3], lambda s: "api" in s)
    d.wait(specs[4], lambda s: "api" in s)
    write(path, "- cluster: api\n  instances: []\n")
    etcd.delete("/mesh/api/e1")
    d.wait(specs[0], has("api"))
    d.wait(specs[2], lambda s: s == {})


def test_stops_promptly_while_blocked(replay, discover):
    c = replay().start()
    c.load("consul/step1.json")
    k = replay().start()
    k.pod_list("kubernetes/pods_list.json")
    d = Discover(f"consul:{c.url}", f"kubernetes:{k.url}", "dns:api.gyrus.test:80=api@127.0.0.1:9",
                 f"etcd:http://127.0.0.1:{free_port()}/x")
    try:
        d.wait(f"consul:{c.url}", lambda s: "api" in s)
        d.wait(f"kubernetes:{k.url}", lambda s: "api" in s)
        time.sleep(0.5)  # all in blocking queries, watches, sleeps
        t0 = time.monotonic()
        d.signal(signal.SIGINT)
        d.proc.wait(timeout=5)
        assert time.monotonic() - t0 < 2.0
    finally:
        d.check_clean_exit()
