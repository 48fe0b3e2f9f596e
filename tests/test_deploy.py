"""deploy/: the alert rules, scrape configs and Kubernetes example, checked with promtool
(when installed) and against a live ``common-api serve`` started the way the manifest
starts it."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from prometheus_flask_exporter import PrometheusMetrics
from support import LiveServer, running_server, wait_until

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
PROMETHEUS = DEPLOY / "prometheus"
RULES = PROMETHEUS / "common-api-alerts.yml"
RULE_TESTS = PROMETHEUS / "common-api-alerts.test.yml"
MANIFEST = DEPLOY / "kubernetes" / "component.yaml"
DASHBOARD = DEPLOY / "grafana" / "common-api-dashboard.json"
YAML_FILES = sorted([*DEPLOY.rglob("*.yml"), *DEPLOY.rglob("*.yaml")])

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed (Debian: apt-get install prometheus)")

# `up` is Prometheus's own synthetic series (1 when the scrape of a target succeeded, 0
# when it failed): no target exports it, so it cannot be in a scrape. It is the only
# series the rules may use without the server exporting it.
SYNTHETIC_SERIES = {"up"}
# labels Prometheus attaches to every scraped series (target labels), not the exporter
TARGET_LABELS = {"job", "instance"}
# labels of a host's prometheus-flask-exporter (grouping by path, its default), which the
# request rules leave the blueprint's requests out by as well
HOST_EXPORTER_LABELS = {"path"}

TOKEN = "deploy-test-token"  # stands in for the Secret the manifest reads


# --- PromQL, tokenized just enough to find the series names an expression reads ---------

_COMMENT = re.compile(r"#[^\n]*")
_STRING = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_OFFSET = re.compile(r"\boffset\s+-?[0-9A-Za-z.]+|@\s*(?:start\(\)|end\(\)|[0-9.]+)")
_NUMBER = re.compile(r"(?<![\w:])(?:0x[0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)")
_IDENTIFIER = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*(\s*\()?")
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and",
             "or", "unless", "offset", "inf", "nan"}
_SELECTOR = re.compile(r"([A-Za-z_:][A-Za-z0-9_:]*)\s*\{((?:" + _STRING.pattern + r"|[^}\"'`])*)\}")
_MATCHER = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)\s*(?:" + _STRING.pattern + ")")


def series_names(expr: str) -> set[str]:
    """Metric names an expression selects: identifiers left once strings, label matchers,
    ranges, grouping clauses, offsets and numbers are gone, minus keywords and anything
    called like a function (functions and aggregations: ``rate(``, ``sum (``)."""
    text = _COMMENT.sub("", _STRING.sub('""', expr))
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = _GROUPING.sub(" ", text)
    text = _OFFSET.sub(" ", text)
    text = _NUMBER.sub(" ", text)
    return {match.group(0) for match in _IDENTIFIER.finditer(text)
            if match.group(1) is None and match.group(0).lower() not in _KEYWORDS}


def matched_labels(expr: str) -> dict[str, set[str]]:
    """Label names each ``name{...}`` selector of an expression matches on."""
    found: dict[str, set[str]] = {}
    for selector in _SELECTOR.finditer(_COMMENT.sub("", expr)):
        labels = {m.group(1) for m in _MATCHER.finditer(selector.group(2))}
        found.setdefault(selector.group(1), set()).update(labels)
    return found


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def manifest_documents() -> dict[str, dict[str, Any]]:
    return {doc["kind"]: doc for doc in yaml.safe_load_all(MANIFEST.read_text()) if doc}


def container() -> dict[str, Any]:
    containers = manifest_documents()["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    spec: dict[str, Any] = containers[0]
    return spec


def serve_arguments(command: list[str]) -> tuple[str, list[str]]:
    """The manifest's ``common-api serve`` command as (bind address, the other arguments)."""
    assert command[:2] == ["common-api", "serve"], command
    args = command[2:]
    at = args.index("--bind")
    return args[at + 1], args[:at] + args[at + 2:]


def promtool(*args: str, cwd: Path = PROMETHEUS) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=60, check=False)


# --- a server started as the manifest starts it -------------------------------------------

@pytest.fixture(scope="module")
def manifest_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """``common-api serve`` with the manifest's arguments (its --bind moved to a free
    loopback port), its literal COMMON_API_* environment, the token its Secret would give,
    and a TMPDIR of its own, like the container's emptyDir."""
    spec = container()
    _, args = serve_arguments(spec["command"])
    env = {**os.environ, "COMMON_API_TOKEN": TOKEN}
    for item in spec["env"]:
        if item["name"].startswith("COMMON_API_") and "value" in item:
            env[item["name"]] = item["value"]
    root = tmp_path_factory.mktemp("deploy")
    env["TMPDIR"] = str(root / "tmp")
    (root / "tmp").mkdir()
    with running_server(root, *args, env=env, ready_path="/periodic-threads-health") as server:
        yield server


def scrape(server: LiveServer) -> dict[str, list[dict[str, str]]]:
    """Sample name -> label sets of one /metrics scrape, with the token Prometheus sends."""
    response = server.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, response.text
    samples: dict[str, list[dict[str, str]]] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(dict(sample.labels))
    return samples


@pytest.fixture(scope="module")
def live_samples(manifest_server: LiveServer) -> dict[str, list[dict[str, str]]]:
    """A scrape taken once the server has answered a request (the request series exist
    only then) and every name the rules read is there or 10 s have passed."""
    assert manifest_server.get("/periodic-threads-health").status_code == 200
    wanted = {name for rule in alert_rules() for name in series_names(rule["expr"])}
    wanted |= {name for _, expr in dashboard_queries() for name in series_names(expr)}
    wanted -= SYNTHETIC_SERIES
    latest: dict[str, list[dict[str, str]]] = {}

    def complete() -> bool:
        latest.clear()
        latest.update(scrape(manifest_server))
        return wanted <= latest.keys()

    with contextlib.suppress(AssertionError):  # the tests name what is missing
        wait_until(complete, 10, interval=0.5, message="the rules' series in a scrape")
    return latest


# --- every file ---------------------------------------------------------------------------

@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: str(p.relative_to(DEPLOY)))
def test_every_yaml_file_parses(path: Path) -> None:
    documents = [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
    assert documents and all(isinstance(doc, dict) for doc in documents)


# --- alert rules --------------------------------------------------------------------------

@needs_promtool
def test_rules_pass_promtool_check() -> None:
    result = promtool("check", "rules", RULES.name)
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_rules_pass_their_promtool_unit_tests() -> None:
    result = promtool("test", "rules", RULE_TESTS.name)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_says_how_bad_and_what_to_do() -> None:
    for rule in alert_rules():
        assert rule["labels"]["severity"] in {"page", "ticket", "info"}, rule["alert"]
        assert rule["annotations"]["summary"].strip(), rule["alert"]
        assert rule["annotations"]["description"].strip(), rule["alert"]


def test_every_alert_is_explained_in_the_deploy_readme() -> None:
    readme = (DEPLOY / "README.md").read_text()
    missing = [rule["alert"] for rule in alert_rules() if rule["alert"] not in readme]
    assert not missing


def test_series_names_finds_selectors_and_skips_functions_labels_and_keywords() -> None:
    expr = """
      histogram_quantile(0.99, sum by (job, le) (rate(a_bucket{endpoint!~"x{1}|by(y)"}[5m])))
        > 1e3
      and on (instance) group_left (version) max without(pid) (b_total offset 5m)
      / (rate(c:recorded[10m]) > 0) unless count by (job) (d{level='high'}) # e_comment
    """
    assert series_names(expr) == {"a_bucket", "b_total", "c:recorded", "d"}


@pytest.mark.server
def test_every_series_the_rules_read_is_in_a_live_scrape(
        live_samples: dict[str, list[dict[str, str]]]) -> None:
    missing = {rule["alert"]: sorted(series_names(rule["expr"]) - SYNTHETIC_SERIES
                                     - live_samples.keys())
               for rule in alert_rules()}
    assert not {alert: names for alert, names in missing.items() if names}


@pytest.mark.server
def test_every_label_the_rules_match_on_is_on_the_live_series(
        live_samples: dict[str, list[dict[str, str]]]) -> None:
    wrong = {}
    for rule in alert_rules():
        for name, labels in matched_labels(rule["expr"]).items():
            if name in SYNTHETIC_SERIES:
                continue
            exported = set().union(*(set(s) for s in live_samples.get(name, [{}])))
            unknown = labels - TARGET_LABELS - HOST_EXPORTER_LABELS - exported
            if unknown:
                wrong[f"{rule['alert']}: {name}"] = sorted(unknown)
    assert not wrong


@pytest.mark.server
def test_thread_rules_aggregate_the_worker_pid_away(
        live_samples: dict[str, list[dict[str, str]]]) -> None:
    # a 2-worker server labels each periodic-thread series with the worker's pid
    assert all("pid" in labels
               for labels in live_samples["common_api_periodic_thread_active"])
    for rule in alert_rules():
        if "common_api_periodic_thread_" in rule["expr"]:
            assert re.search(r"\b(?:min|max|sum) by \(job, instance, thread, level\)",
                             rule["expr"]), rule["alert"]


# --- Grafana dashboard --------------------------------------------------------------------

# the scrape configs attach ``component`` to every target; the dashboard selects on it
DASHBOARD_TARGET_LABELS = TARGET_LABELS | {"component"}
_LABEL_VALUES = re.compile(r"^label_values\((.*),\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)$", re.S)


def dashboard() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return document


def dashboard_panels() -> list[dict[str, Any]]:
    panels = []
    for panel in dashboard()["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", []))
    return panels


def dashboard_queries() -> list[tuple[str, str]]:
    """(where, PromQL) of every panel target and every query variable (the selector inside
    ``label_values(selector, label)``)."""
    queries = [(panel["title"], target["expr"]) for panel in dashboard_panels()
               for target in panel.get("targets", [])]
    for variable in dashboard()["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            text = query["query"] if isinstance(query, dict) else query
            match = _LABEL_VALUES.match(text.strip())
            queries.append((f"${variable['name']}", match.group(1) if match else text))
    return queries


def test_dashboard_is_grafana_dashboard_json() -> None:
    board = dashboard()
    assert board["title"] and board["uid"] and isinstance(board["schemaVersion"], int)
    panels = dashboard_panels()
    assert len({panel["id"] for panel in panels}) == len(panels)
    for panel in panels:
        grid = panel["gridPos"]
        assert panel["type"] and panel["title"], panel
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24 and grid["h"] > 0, panel["title"]
        if panel["type"] != "row":
            assert panel["targets"], panel["title"]
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        refs = [target["refId"] for target in panel.get("targets", [])]
        assert len(set(refs)) == len(refs) and all(target["expr"].strip()
                                                   for target in panel.get("targets", []))
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["component"]["multi"] and variables["component"]["includeAll"]


def test_dashboard_covers_health_threads_and_requests() -> None:
    exprs = " ".join(expr for _, expr in dashboard_queries())
    for series in ("common_api_healthy", "common_api_periodic_thread_active",
                   "common_api_periodic_thread_runs_total",
                   "common_api_periodic_thread_failures_total",
                   "flask_http_request_duration_seconds_count",
                   "flask_http_request_duration_seconds_bucket"):
        assert series in exprs
    assert "by (component, thread, level)" in exprs
    # by route in both shapes of the request series: common_api's (endpoint) and a host
    # exporter's grouped by path, whose request counter has no route label
    assert "by (component, endpoint, path" in exprs and "flask_http_request_total" not in exprs


def test_every_dashboard_query_follows_the_component_selector() -> None:
    unscoped = [where for where, expr in dashboard_queries()
                if not where.startswith("$")
                for selector in re.findall(r"\{[^}]*\}", expr)
                if 'component=~"$component"' not in selector]
    assert not unscoped


def test_dashboard_parses_and_names_its_series() -> None:
    names = {name for _, expr in dashboard_queries() for name in series_names(expr)}
    assert "common_api_info" in names and "time" not in names and "component" not in names


@pytest.mark.server
def test_every_series_the_dashboard_reads_is_in_a_live_scrape(
        live_samples: dict[str, list[dict[str, str]]]) -> None:
    missing = {where: sorted(series_names(expr) - SYNTHETIC_SERIES - live_samples.keys())
               for where, expr in dashboard_queries()}
    assert not {where: names for where, names in missing.items() if names}


@pytest.mark.server
def test_every_label_the_dashboard_matches_on_is_on_the_live_series(
        live_samples: dict[str, list[dict[str, str]]]) -> None:
    wrong = {}
    for where, expr in dashboard_queries():
        for name, labels in matched_labels(expr).items():
            if name in SYNTHETIC_SERIES:
                continue
            exported = set().union(*(set(s) for s in live_samples.get(name, [{}])))
            if labels - DASHBOARD_TARGET_LABELS - exported:
                wrong[f"{where}: {name}"] = sorted(labels - DASHBOARD_TARGET_LABELS - exported)
    assert not wrong


@pytest.mark.parametrize("name", ["scrape-config.yml", "scrape-config-kubernetes.yml"])
def test_scrape_configs_give_the_dashboard_its_component_label(name: str) -> None:
    text = (PROMETHEUS / name).read_text()
    assert re.search(r"\bcomponent\b", text)


def test_deploy_readme_says_how_to_import_the_dashboard() -> None:
    readme = (DEPLOY / "README.md").read_text()
    assert "grafana/common-api-dashboard.json" in readme and "Import" in readme


# --- scrape configs -----------------------------------------------------------------------

@needs_promtool
def test_static_scrape_config_passes_promtool() -> None:
    result = promtool("check", "config", "--syntax-only", "scrape-config.yml")
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_kubernetes_scrape_config_passes_promtool() -> None:
    result = promtool("check", "config", "--syntax-only", "scrape-config-kubernetes.yml")
    if "field kubernetes_sd_configs not found" in result.stdout + result.stderr:
        pytest.skip("this promtool is built without Kubernetes discovery (Debian's is)")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", ["scrape-config.yml", "scrape-config-kubernetes.yml"])
def test_scrape_configs_feed_the_rules_job_with_a_token(name: str) -> None:
    config = yaml.safe_load((PROMETHEUS / name).read_text())
    assert config["rule_files"] == [RULES.name]
    [job] = config["scrape_configs"]
    assert job["job_name"] == "common-api"
    assert job["metrics_path"] == "/metrics"
    assert job["authorization"]["type"] == "Bearer" and job["authorization"]["credentials_file"]


@pytest.mark.server
def test_metrics_answers_the_scrape_token_and_refuses_without_it(
        manifest_server: LiveServer) -> None:
    assert manifest_server.get("/metrics").status_code == 401
    assert manifest_server.get(
        "/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200


# --- Kubernetes example -------------------------------------------------------------------

def test_manifest_has_a_deployment_and_a_service_of_the_same_pods() -> None:
    docs = manifest_documents()
    assert docs.keys() == {"Deployment", "Service"}
    pod_labels = docs["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert docs["Service"]["spec"]["selector"].items() <= pod_labels.items()
    assert docs["Deployment"]["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()


def test_container_port_matches_the_bind_probes_service_and_scrape_annotation() -> None:
    spec = container()
    bind, _ = serve_arguments(spec["command"])
    host, port = bind.rsplit(":", 1)
    assert host == "0.0.0.0"
    [declared] = spec["ports"]
    assert declared["containerPort"] == int(port)
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert spec[probe]["httpGet"]["port"] in {declared["name"], int(port)}, probe
    docs = manifest_documents()
    assert docs["Service"]["spec"]["ports"][0]["targetPort"] in {declared["name"], int(port)}
    annotations = docs["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == port
    assert annotations["prometheus.io/path"] == "/metrics"


@pytest.mark.server
def test_probe_paths_answer_200_without_a_token(manifest_server: LiveServer) -> None:
    # kubelet sends no Authorization header: each probe must pass on the path alone
    spec = container()
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        get = spec[probe]["httpGet"]
        assert "httpHeaders" not in get, probe
        assert manifest_server.get(get["path"]).status_code == 200, probe


def test_token_comes_from_a_secret() -> None:
    env = {item["name"]: item for item in container()["env"]}
    assert env["COMMON_API_TOKEN"]["valueFrom"]["secretKeyRef"]["key"]
    assert "value" not in env["COMMON_API_TOKEN"]


@pytest.mark.server
def test_read_only_root_gets_a_writable_tmpdir_where_serve_keeps_its_state(
        manifest_server: LiveServer) -> None:
    pod = manifest_documents()["Deployment"]["spec"]["template"]["spec"]
    spec = container()
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["readOnlyRootFilesystem"] is True
    tmpdir = next(item["value"] for item in spec["env"] if item["name"] == "TMPDIR")
    [mount] = [m for m in spec["volumeMounts"] if m["mountPath"] == tmpdir]
    [volume] = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    assert "emptyDir" in volume
    # the fixture gave the server a TMPDIR of its own: its state directory is there
    server_tmp = Path(manifest_server.log_path).parent / "tmp"
    assert list(server_tmp.glob("common-api-state-*"))


# --- a component under a prefix (issue 22) -----------------------------------------------

def test_under_a_prefix_the_rules_series_are_at_the_prefixed_path_the_configs_name() -> None:
    """Beside the host's own prometheus-flask-exporter at /metrics, common_api's series
    (every one the alert rules read) are at <prefix>/metrics, and the scrape configs and the
    deploy README say so."""
    from flask import Flask
    from prometheus_client import CollectorRegistry
    from prometheus_flask_exporter import PrometheusMetrics

    from common_api import ThreadLevel, bp, create_periodic_thread

    app = Flask("prefixed_component")
    PrometheusMetrics(app, registry=CollectorRegistry())
    thread = create_periodic_thread("deploy-prefixed", 60, lambda: True,
                                    level=ThreadLevel.CRITICAL, auto_register=True)
    thread.start()
    try:
        app.register_blueprint(bp, url_prefix="/ops")
        client = app.test_client()
        client.get("/ops/periodic-threads-health")
        wanted = {name for rule in alert_rules() for name in series_names(rule["expr"])}
        wanted -= SYNTHETIC_SERIES
        wanted = {name for name in wanted if name.startswith("common_api_")}
        prefixed = client.get("/ops/metrics").get_data(as_text=True)
        host_own = client.get("/metrics").get_data(as_text=True)
    finally:
        thread.stop(timeout=5)
        from common_api import PeriodicThreadRegistry

        PeriodicThreadRegistry.get_instance().unregister("deploy-prefixed")
    assert wanted and all(name in prefixed for name in wanted), wanted
    assert not any(name in host_own for name in wanted)
    for config in ("scrape-config.yml", "scrape-config-kubernetes.yml"):
        assert "/ops/metrics" in (PROMETHEUS / config).read_text()
    assert "metrics_path: /ops/metrics" in (DEPLOY / "README.md").read_text()


def _blueprint_paths_pattern(expr: str) -> re.Pattern[str]:
    [pattern] = set(re.findall(r'path!~"([^"]+)"', expr))
    return re.compile(pattern)


def test_request_rules_leave_the_blueprint_out_under_a_host_exporter_grouping_by_path(
        ) -> None:
    """A host's prometheus-flask-exporter records requests by path (its default) and its
    request counter has no route label: the request rules read the duration histogram and
    leave out every path of the blueprint's table, under any prefix, and no other."""
    from flask import Flask
    from prometheus_client import CollectorRegistry
    from prometheus_client.parser import text_string_to_metric_families as parse

    from common_api import bp
    from common_api.endpoints import ENDPOINTS

    app = Flask("exporter_by_path")
    app.add_url_rule("/order", "order", lambda: "ok")
    PrometheusMetrics(app, registry=CollectorRegistry())
    app.register_blueprint(bp, url_prefix="/ops")
    client = app.test_client()
    for path in ("/order", "/ops/periodic-threads-health", "/ops/version-of-nothing"):
        client.get(path)
    paths = {sample.labels.get("path") for family in parse(
        client.get("/ops/metrics").get_data(as_text=True))
        for sample in family.samples if sample.name == "flask_http_request_duration_seconds_count"}
    assert {"/order", "/ops/periodic-threads-health"} <= paths, paths
    rules = {rule["alert"]: rule["expr"] for rule in alert_rules()}
    for alert in ("CommonApiHttp5xxRatioHigh", "CommonApiSlowRequests"):
        expr = rules[alert]
        assert "flask_http_request_total" not in expr, alert
        pattern = _blueprint_paths_pattern(expr)
        for endpoint in ENDPOINTS:
            path = endpoint.rule.replace("<path:thread_name>", "cache-refresh")
            for prefix in ("", "/ops", "/svc/ops"):
                assert pattern.fullmatch(prefix + path), (alert, prefix + path)
        for host_path in ("/order", "/", "/api/orders", "/metricsx", "/ops/version-of-nothing"):
            assert not pattern.fullmatch(host_path), (alert, host_path)
