"""Admin endpoints, Prometheus metrics and histograms, access log formats and flags."""
import json
import re
import subprocess
import time

import requests

from conftest import GYRUS, free_port, simple_mesh, wait_for


def test_admin_endpoints(gyrus_factory, backend_factory):
    be = backend_factory()
    port = free_port()
    g = gyrus_factory(simple_mesh(port, [be.port]), "test", workers=2)
    for _ in range(10):
        requests.get(f"http://127.0.0.1:{port}/x", timeout=5)
    requests.get(f"http://127.0.0.1:{port}/status?code=503", timeout=5)

    status, headers, body = g.admin("/ready")
    assert status == 200 and body == b"LIVE\n"

    status, headers, body = g.admin("/stats/prometheus")
    text = body.decode()
    assert status == 200 and headers["content-type"].startswith("text/plain; version=0.0.4")
    assert g.admin("/metrics")[0] == 200
    # Every sample line is well-formed Prometheus text.
    for line in text.splitlines():
        if line and not line.startswith("#"):
            assert re.fullmatch(r'[a-z_]+(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? -?[0-9.e+]+', line), line
    assert g.metric("gyrus_listener_downstream_rq_total", listener="ingress", status_class="2xx") == 10
    assert g.metric("gyrus_listener_downstream_rq_total", listener="ingress", status_class="5xx") == 1
    assert g.metric("gyrus_route_rq_total", route="root", status_class="2xx") == 10
    assert g.metric("gyrus_cluster_upstream_rq_total", cluster="backend", status_class="5xx") == 1
    assert g.metric("gyrus_listener_downstream_rq_time_seconds_count", listener="ingress") == 11
    assert g.metric("gyrus_cluster_upstream_rq_time_seconds_count", cluster="backend") == 11
    assert g.metric("gyrus_listener_downstream_rq_time_seconds_bucket", listener="ingress", le="+Inf") == 11
    assert g.metric("gyrus_listener_downstream_cx_total", listener="ingress") == 11
    assert g.metric("gyrus_cluster_upstream_cx_total", cluster="backend") >= 1
    assert g.metric("gyrus_listener_downstream_cx_rx_bytes_total", listener="ingress") > 0
    assert g.metric("gyrus_server_workers") == 2
    assert g.metric("process_resident_memory_bytes") > 0
    # buckets are cumulative
    buckets = [float(m) for m in re.findall(
        r'gyrus_listener_downstream_rq_time_seconds_bucket\{listener="ingress",le="[^"]+"\} (\S+)', text)]
    assert buckets == sorted(buckets) and len(buckets) == 17

    stats = json.loads(g.admin("/stats")[2])
    assert stats["listeners"]["ingress"]["rq_2xx"] == 10
    assert stats["clusters"]["backend"]["rq_5xx"] == 1

    clusters = json.loads(g.admin("/clusters?format=json")[2])["clusters"]
    assert clusters[0]["name"] == "backend" and clusters[0]["hosts"][0]["address"] == f"127.0.0.1:{be.port}"
    assert f"backend::127.0.0.1:{be.port}::health_flags::healthy" in g.admin("/clusters")[2].decode()

    dump = json.loads(g.admin("/config_dump")[2])
    assert dump["proxy"] == "test" and dump["generation"] == 1
    assert {o["kind"] for o in dump["objects"]} == {"listener", "domain", "proxy", "cluster", "route"}
    assert g.admin("/nope")[0] == 404


def test_active_gauges(gyrus_factory, backend_factory):
    import threading
    be = backend_factory()
    port = free_port()
    g = gyrus_factory(simple_mesh(port, [be.port]), "test")
    t = threading.Thread(target=lambda: requests.get(f"http://127.0.0.1:{port}/slow?s=1", timeout=5))
    t.start()
    wait_for(lambda: len(be.requests) == 1, 5, what="request in flight")
    assert g.metric("gyrus_listener_downstream_rq_active", listener="ingress") == 1
    assert g.metric("gyrus_cluster_upstream_rq_active", cluster="backend") == 1
    assert g.metric("gyrus_listener_downstream_cx_active", listener="ingress") == 1
    t.join()
    wait_for(lambda: g.metric("gyrus_listener_downstream_rq_active", listener="ingress") == 0, 5, what="idle")
    assert g.metric("gyrus_cluster_upstream_cx_idle", cluster="backend") == 1


def test_access_log_json_fields(gyrus_factory, backend_factory):
    be = backend_factory()
    port = free_port()
    g = gyrus_factory(simple_mesh(port, [be.port]), "test")
    requests.post(f"http://127.0.0.1:{port}/sink?x=1", data=b"12345",
                  headers={"User-Agent": "ua/1", "X-Request-Id": "rid-1", "X-Forwarded-For": "9.9.9.9"}, timeout=5)
    wait_for(lambda: g.access_entries(), 5, what="access log line")
    e = g.access_entries()[-1]
    assert e["method"] == "POST" and e["path"] == "/sink?x=1" and e["protocol"] == "HTTP/1.1"
    assert e["status"] == 200 and e["response_flags"] == "-"
    assert e["bytes_received"] == 5 and e["bytes_sent"] > 0
    assert e["upstream_host"] == f"127.0.0.1:{be.port}" and e["upstream_cluster"] == "backend"
    assert e["route"] == "root" and e["listener"] == "ingress"
    assert e["request_id"] == "rid-1" and e["user_agent"] == "ua/1" and e["x_forwarded_for"] == "9.9.9.9"
    assert e["downstream_remote_address"] == "127.0.0.1"
    assert e["duration_ms"] >= e["upstream_service_time_ms"] >= 0
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", e["start_time"])


def test_access_log_format_string_and_listener_logger(gyrus_factory, backend_factory, tmp_path):
    be = backend_factory()
    port = free_port()
    path = tmp_path / "listener.log"
    mesh = simple_mesh(port, [be.port], listener_extra={"access_loggers": {"http_connection_loggers": {
        "file_loggers": [{"path": str(path), "format": "%METHOD% %PATH% %RESPONSE_CODE% %RESPONSE_FLAGS% "
                                                      "%UPSTREAM_CLUSTER% %REQ(X-REQUEST-ID)%"}]}}})
    gyrus_factory(mesh, "test")
    requests.get(f"http://127.0.0.1:{port}/a", headers={"X-Request-Id": "r1"}, timeout=5)
    wait_for(lambda: path.exists() and path.read_text(), 5, what="listener access log")
    assert path.read_text() == "GET /a 200 - backend r1\n"


def test_bad_access_log_format_refused_at_start(tmp_path):
    port = free_port()
    mesh = tmp_path / "m.json"
    mesh.write_text(json.dumps(simple_mesh(port, [1])))
    out = subprocess.run([GYRUS, "proxy", "--config", str(mesh), "--name", "test", "--admin", "off",
                          "--access-log", "-", "--access-log-format", "%NOPE%"], capture_output=True, timeout=10)
    assert out.returncode != 0
    assert out.stderr.decode().strip() == "proxy: error: --access-log: unknown access log field %NOPE%"


def test_json_logs(tmp_path):
    port = free_port()
    mesh = tmp_path / "m.json"
    mesh.write_text(json.dumps(simple_mesh(port, [1])))
    p = subprocess.Popen([GYRUS, "proxy", "--config", str(mesh), "--name", "test", "--admin", "off",
                          "--log-format", "json"], stderr=subprocess.PIPE)
    time.sleep(0.5)
    p.terminate()
    _, err = p.communicate(timeout=10)
    lines = [json.loads(line) for line in err.decode().splitlines()]
    assert lines and all({"ts", "level", "component", "msg"} <= set(line) for line in lines)
    assert any("draining" in line["msg"] for line in lines)
