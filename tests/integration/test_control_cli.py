"""The CLI verbs against a real control plane: apply, get, list, delete, edit, status, version;
every failure exits non-zero with one line on standard error."""
import json
import os
import random
import stat

from control_fixtures import cli_env, control, control_factory, poll, run_cli, small_mesh  # noqa: F401
from conftest import GYRUS, ROOT, free_port, to_yaml


def cli(control, *args, **kw):
    return run_cli(*args, env=cli_env(control, **kw.pop("env", {})), **kw)


def one_line_error(out, prefix):
    assert out.returncode != 0, out.stdout
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith(prefix), out.stderr
    return lines[0]


def test_apply_get_list_delete(control, tmp_path):
    mesh = small_mesh()
    random.Random(3).shuffle(mesh)
    path = tmp_path / "mesh.yaml"
    path.write_text(to_yaml(mesh))
    out = cli(control, "apply", "-f", str(path))
    assert out.returncode == 0, out.stderr
    assert 'cluster "svc" created' in out.stdout
    assert out.stdout.strip().endswith("applied: 7 created, 0 updated, 0 unchanged, 0 deleted")
    out = cli(control, "apply", "-f", str(path))
    assert out.stdout.strip() == "applied: 0 created, 0 updated, 7 unchanged, 0 deleted"

    out = cli(control, "list", "clusters")
    assert out.returncode == 0
    assert out.stdout.splitlines()[0].split() == ["KEY", "NAME", "INSTANCES", "LB_POLICY"]
    assert out.stdout.splitlines()[1].split() == ["svc", "svc", "1", "-"]
    out = cli(control, "list", "route")
    assert out.stdout.splitlines()[1].split() == ["root", "ingress", "/", "prefix", "svc-rules", "-"]
    out = cli(control, "get", "shared_rules")
    assert out.stdout.splitlines()[1].split() == ["svc-rules", "-", "svc:1"]

    out = cli(control, "get", "cluster", "svc")  # YAML by default for one object
    assert out.stdout.startswith("kind: cluster\ncluster_key: svc\nname: svc\n")
    assert "- host: 127.0.0.1\n  port: 8080\n" in out.stdout
    out = cli(control, "get", "cluster", "svc", "-o", "json")
    obj = json.loads(out.stdout)
    assert list(obj)[:3] == ["kind", "cluster_key", "name"] and list(obj)[-1] == "checksum"
    out = cli(control, "get", "clusters", "-o", "json", "--filter", "name=svc")
    assert [c["cluster_key"] for c in json.loads(out.stdout)] == ["svc"]
    out = cli(control, "get", "clusters", "-o", "json", "--filter", "name=other")
    assert json.loads(out.stdout) == []

    err = one_line_error(cli(control, "delete", "cluster", "svc"), "delete: error: ")
    assert err == 'delete: error: shared_rules "svc-rules": default.light[0].cluster_key: no cluster "svc"'
    out = cli(control, "delete", "route", "root")
    assert out.returncode == 0 and out.stdout.strip() == 'route "root" deleted'
    one_line_error(cli(control, "delete", "route", "root"), 'delete: error: no route "root"')


def test_yaml_roundtrip_through_get_and_apply(control, tmp_path):
    tricky = {"kind": "cluster", "cluster_key": "tricky", "name": "yes",
              "instances": [{"host": "10.0.0.1", "port": 80, "metadata": [
                  {"key": "version", "value": "1.10"}, {"key": "on", "value": "null"},
                  {"key": "empty", "value": ""}, {"key": "time", "value": "12:30"},
                  {"key": "quote", "value": "it's \"quoted\": #1"}]}]}
    control.apply([tricky])
    out = cli(control, "get", "clusters", "-o", "yaml")
    path = tmp_path / "dump.yaml"
    path.write_text(out.stdout)
    control.ok("DELETE", "/v1.0/cluster/tricky")
    out = cli(control, "apply", "-f", str(path))
    assert out.returncode == 0, out.stderr
    got = control.ok("GET", "/v1.0/cluster/tricky")
    assert got["name"] == "yes" and got["instances"] == tricky["instances"]


def test_apply_from_stdin_and_failures(control, tmp_path):
    out = cli(control, "apply", "-f", "-", input=json.dumps(small_mesh()))
    assert out.returncode == 0 and "7 created" in out.stdout
    bad = small_mesh(prefix="x-")
    for o in bad:
        if o["kind"] == "shared_rules":
            o["default"]["light"][0]["cluster_key"] = "pay"
    path = tmp_path / "bad.yaml"
    path.write_text(to_yaml(bad))
    err = one_line_error(cli(control, "apply", "-f", str(path)), "apply: error: ")
    assert err == 'apply: error: shared_rules "x-svc-rules": default.light[0].cluster_key: no cluster "pay"'
    path.write_text("- kind: zone\n  zone_key: [\n")
    err = one_line_error(cli(control, "apply", "-f", str(path)), f"apply: error: {path}:")
    one_line_error(cli(control, "apply", "-f", "/nonexistent.yaml"),
                   "apply: error: /nonexistent.yaml: No such file or directory")
    one_line_error(cli(control, "apply"), 'apply: error: -f FILE is required')
    out = run_cli("apply", "-f", "-", "--control", f"http://127.0.0.1:{free_port()}", input="[]")
    one_line_error(out, "apply: error: cannot reach the control plane at http://127.0.0.1:")


def test_prune(control, tmp_path):
    control.apply(small_mesh())
    path = tmp_path / "zones.yaml"
    path.write_text(to_yaml([{"kind": "zone", "zone_key": "zone-1", "name": "zone-1"}]))
    out = cli(control, "apply", "-f", str(path), "--prune")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("applied: 0 created, 0 updated, 1 unchanged, 6 deleted")


def test_get_failures(control):
    one_line_error(cli(control, "get", "gizmo"),
                   'get: error: unknown kind "gizmo" (zone, proxy, listener, domain, route, shared_rules, cluster)')
    one_line_error(cli(control, "get", "cluster", "nope"), 'get: error: no cluster "nope"')
    one_line_error(cli(control, "get", "cluster", "-o", "xml"), 'get: error: -o: want json, yaml or table, got "xml"')
    one_line_error(cli(control, "get"), "get: error: missing KIND")
    one_line_error(cli(control, "list", "zone", "--bogus"), "list: error: unknown option --bogus (see --help)")
    one_line_error(run_cli("list", "zone", "--control", "ftp://x"), 'list: error: --control: want http://HOST:PORT')


def write_editor(tmp_path, name, body):
    path = tmp_path / name
    path.write_text("#!/usr/bin/python3\nimport sys\np = sys.argv[1]\ns = open(p).read()\n" + body +
                    "open(p, 'w').write(s)\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


def test_edit(control, tmp_path):
    control.apply(small_mesh())
    ed = write_editor(tmp_path, "ok.py", "s = s.replace('port: 8080', 'port: 8081')\n")
    out = cli(control, "edit", "cluster", "svc", env={"EDITOR": ed, "VISUAL": ""})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == 'cluster "svc" edited'
    assert control.ok("GET", "/v1.0/cluster/svc")["instances"][0]["port"] == 8081

    # No change: nothing happens.
    out = cli(control, "edit", "cluster", "svc", env={"EDITOR": "true", "VISUAL": ""})
    assert out.returncode == 0 and out.stdout.strip() == 'cluster "svc": no changes'

    # An invalid edit reopens the editor with the error on top; a fixed file is applied.
    log = tmp_path / "seen.txt"
    ed = write_editor(tmp_path, "fix.py",
                      f"open({str(log)!r}, 'a').write(s + '\\n=====\\n')\n"
                      "s = s.replace('port: 8081', 'port: 0') if 'error:' not in s else s.replace('port: 0', 'port: 8082')\n")
    out = cli(control, "edit", "cluster", "svc", env={"EDITOR": ed, "VISUAL": ""})
    assert out.returncode == 0, out.stderr
    seen = log.read_text().split("=====")
    assert "# error: cluster \"svc\": instances[0].port: must be between 1 and 65535, got 0" in seen[1]
    assert control.ok("GET", "/v1.0/cluster/svc")["instances"][0]["port"] == 8082

    # Saving the broken file unchanged gives up with the error, one line, nothing applied.
    ed = write_editor(tmp_path, "broken.py", "s = s.replace('port: 8082', 'port: 0')\n")
    err = one_line_error(cli(control, "edit", "cluster", "svc", env={"EDITOR": ed, "VISUAL": ""}), "edit: error: ")
    assert err == 'edit: error: cluster "svc": instances[0].port: must be between 1 and 65535, got 0'
    assert control.ok("GET", "/v1.0/cluster/svc")["instances"][0]["port"] == 8082

    # Someone else changes the object while it is being edited: refused by its checksum.
    ed = write_editor(tmp_path, "race.py",
                      "import urllib.request, json\n"
                      f"u = {control.url + '/v1.0/cluster/svc'!r}\n"
                      "urllib.request.urlopen(urllib.request.Request(u, data=json.dumps({'name': 'svc', "
                      "'zone_key': 'zone-1', 'instances': [{'host': '127.0.0.1', 'port': 9999}]}).encode(), "
                      "method='PUT')).read()\n"
                      "s = s.replace('port: 8082', 'port: 8083')\n")
    err = one_line_error(cli(control, "edit", "cluster", "svc", env={"EDITOR": ed, "VISUAL": ""}), "edit: error: ")
    assert 'cluster "svc": checksum mismatch' in err
    assert control.ok("GET", "/v1.0/cluster/svc")["instances"][0]["port"] == 9999

    # The key cannot change; an empty file cancels; a failing editor is an error.
    ed = write_editor(tmp_path, "rekey.py", "s = s.replace('cluster_key: svc', 'cluster_key: other')\n")
    env = {"EDITOR": ed, "VISUAL": ""}
    err = one_line_error(cli(control, "edit", "cluster", "svc", env=env), "edit: error: ")
    assert err == "edit: error: cluster_key: cannot be changed (create a new cluster and delete this one)"
    ed = write_editor(tmp_path, "empty.py", "s = ''\n")
    out = cli(control, "edit", "cluster", "svc", env={"EDITOR": ed, "VISUAL": ""})
    assert out.returncode == 0 and "cancelled" in out.stdout
    one_line_error(cli(control, "edit", "cluster", "svc", env={"EDITOR": "false", "VISUAL": ""}),
                   "edit: error: the editor (false) failed; nothing changed")
    one_line_error(cli(control, "edit", "cluster", "ghost", env={"EDITOR": "true", "VISUAL": ""}),
                   'edit: error: no cluster "ghost"')


def test_status_and_version(control):
    control.apply(small_mesh())
    out = cli(control, "status")
    assert out.returncode == 0
    assert out.stdout.startswith(f"control plane {control.url}: gyrus ")
    assert "no proxies polling" in out.stdout
    body = poll(control, "svc", node="n1")[1]
    poll(control, "svc", version=body["version"], node="n1", status="ack")
    out = cli(control, "status")
    row = next(line for line in out.stdout.splitlines() if line.startswith("svc "))
    assert row.split()[:6] == ["svc", "-", "n1", body["version"], "ACK", "yes"]
    js = json.loads(cli(control, "status", "-o", "json").stdout)
    assert js["clusters"] == [{"cluster_key": "svc", "name": "svc", "static_instances": 1,
                               "discovered_instances": 0, "instances": 1}]
    out = cli(control, "version")
    assert out.returncode == 0
    lines = out.stdout.splitlines()
    assert lines[0].startswith("gyrus ") and lines[1] == f"control plane {control.url}: {lines[0]} (store sqlite)"
    out = run_cli("version", "--control", f"http://127.0.0.1:{free_port()}")
    assert out.returncode == 0 and len(out.stdout.splitlines()) == 1
    one_line_error(run_cli("status", "--control", f"http://127.0.0.1:{free_port()}"),
                   "status: error: cannot reach the control plane")


def test_control_flags_one_line(tmp_path):
    for args, message in [
        (("control",), "control: error: --data-dir is required (the SQLite store lives there)"),
        (("control", "--store", "redis", "--data-dir", str(tmp_path)), 'control: error: --store: want sqlite or etcd, got "redis"'),
        (("control", "--data-dir", str(tmp_path), "--listen", "nowhere"),
         'control: error: --listen: cannot parse "nowhere" (want IP:PORT)'),
        (("control", "--bogus"), "control: error: unknown option --bogus (see --help)"),
    ]:
        out = run_cli(*args)
        assert out.returncode == 1 and out.stderr.strip() == message, out.stderr
    out = run_cli("control", "--help")
    assert out.returncode == 0 and "--data-dir" in out.stdout
    assert os.path.exists(GYRUS) and ROOT
