"""The dashboard and the alert rules match the code: every PromQL expression in them names
metrics (and labels) a live llmos exports; the rules pass ``promtool check rules`` and their
unit tests (``promtool test rules``); and a real Prometheus scrapes a live llmos on loopback,
with the admin key from a file, and answers the dashboard's queries with data."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from kernel.fakes import fake_kernel
from llmos.config import load_config
from llmos.server import Lifecycle, create_app

from .conftest import DEBIAN_PROMETHEUS, MONITORING, tool
from .promql import (
    LABEL_VALUES,
    PROMETHEUS_SERIES,
    TARGET_LABELS,
    Expression,
    concrete,
    dashboard_expressions,
    label_matchers,
    metric_names,
    recorded_names,
    rule_expressions,
)

RULES = MONITORING / "llmos-rules.yml"
DASHBOARD = MONITORING / "llmos-dashboard.json"
ADMIN_KEY = "sk-llmos-deploy-monitoring-admin-0123456789"
MSG = [{"role": "user", "content": "hi"}]


@dataclass
class Live:
    url: str
    admin: dict[str, str]


@pytest.fixture
def live(tmp_path: Path, serve_app: Callable[..., str]) -> Iterator[Live]:
    """A real llmos server (fake engines) on loopback, with auth and /metrics behind the admin
    key, after traffic that touches every kind of metric: two tenants' chats, a budget refusal."""
    config = load_config(
        home=tmp_path / "home", auth="required", admin_key=ADMIN_KEY, metrics_require_admin=True
    )
    kernel = fake_kernel(tmp_path, models=["fake:1"], config=config, step_cost_s=0.001)
    life = Lifecycle()
    url = serve_app(create_app(kernel, lifecycle=life), life)
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    with httpx.Client(base_url=url, timeout=30) as c:
        for name, limits in (("acme", {}), ("thrifty", {"token_budget": 1, "budget_period": "day"})):
            assert (
                c.post("/api/tenants", json={"name": name, "limits": limits}, headers=admin).status_code
                == 201
            )
            key = c.post("/api/keys", json={"tenant": name}, headers=admin).json()["key"]
            chat = {"model": "fake:1", "messages": MSG, "max_tokens": 4}
            headers = {"Authorization": f"Bearer {key}"}
            assert c.post("/v1/chat/completions", json=chat, headers=headers).status_code == 200
        assert c.post("/v1/chat/completions", json=chat, headers=headers).status_code == 429
    yield Live(url, admin)


def exported(text: str) -> dict[str, set[str]]:
    """Every sample name a /metrics text can hold (from its TYPE lines, so a labelled metric that
    has not happened yet counts), with the labels seen on its samples."""
    names: dict[str, set[str]] = {}
    for line in text.splitlines():
        if not line.startswith("# TYPE "):
            continue
        _, _, name, kind = line.split(" ", 3)
        if kind == "counter":
            series = [name, name.removesuffix("_total") + "_created"]
        elif kind == "histogram":
            series = [name + s for s in ("_bucket", "_count", "_sum", "_created")]
        else:
            series = [name]
        for s in series:
            names.setdefault(s, set())
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            names.setdefault(sample.name, set()).update(sample.labels)
    return names


def all_expressions() -> list[Expression]:
    return rule_expressions(RULES) + dashboard_expressions(DASHBOARD)


def test_the_expression_reader() -> None:
    expr = (
        'sum by (job, model) (rate(llmos_x_total{status=~"5..", model=~"$model"}[$__rate_interval]))'
        " / clamp_min(sum without (le) (llmos_y_bucket offset 15m), 1e-9) > bool 0.5 or up"
    )
    assert metric_names(expr) == {"llmos_x_total", "llmos_y_bucket", "up"}
    assert sorted(label_matchers(expr)) == [("llmos_x_total", "model"), ("llmos_x_total", "status")]
    assert metric_names("label_values(llmos_scheduler_slots, model)") == {"llmos_scheduler_slots"}
    assert "$" not in concrete(expr) and "[1m]" in concrete(expr)


def test_every_expression_names_metrics_a_live_server_exports(live: Live) -> None:
    r = httpx.get(f"{live.url}/metrics", headers=live.admin)
    assert r.status_code == 200
    names = exported(r.text)
    assert "llmos_limit_rejections_total" in names and "llmos_queue_wait_seconds_bucket" in names
    allowed = set(names) | recorded_names(RULES) | PROMETHEUS_SERIES
    expressions = all_expressions()
    assert len(expressions) > 40
    for e in expressions:
        used = metric_names(e.expr)
        assert used, f"{e.where}: no metric in {e.expr!r}"
        assert used <= allowed, f"{e.where}: {sorted(used - allowed)} not exported by llmos"
        for metric, label in label_matchers(e.expr):
            seen = names.get(metric)
            if seen:  # a metric with samples: its matchers must name its labels
                assert label in seen | TARGET_LABELS, f"{e.where}: {metric} has no label {label!r}"


def test_the_dashboard_covers_what_operators_watch() -> None:
    used = set().union(*(metric_names(e.expr) for e in dashboard_expressions(DASHBOARD)))
    for metric in (
        "llmos_completion_tokens_total",  # throughput
        "llmos_time_to_first_token_seconds_bucket",
        "llmos_time_per_output_token_seconds_bucket",
        "llmos_queue_depth",
        "llmos_queue_predicted_wait_seconds",
        "llmos_queue_observed_wait_seconds",
        "llmos_scheduler_rejections_total",
        "llmos_limit_rejections_total",
        "llmos_model_evictions_total",
        "llmos_worker_restarts_total",
    ):
        assert metric in used, metric
    alerts = {e.where.rsplit("/", 1)[1] for e in rule_expressions(RULES) if "llmos.alerts" in e.where}
    assert {
        "LLMOSDown",
        "LLMOSQueueWaitHigh",
        "LLMOSHighErrorRate",
        "LLMOSTenantBudgetExhausted",
        "LLMOSWorkerCrashLoop",
    } <= alerts


def test_promtool_checks_the_rules() -> None:
    promtool = tool("promtool", DEBIAN_PROMETHEUS)
    done = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_the_rules_unit_tests_pass() -> None:
    promtool = tool("promtool", DEBIAN_PROMETHEUS)
    done = subprocess.run(
        [promtool, "test", "rules", "llmos-rules.test.yml"],
        cwd=MONITORING,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.integration
def test_a_real_prometheus_scrapes_llmos_and_answers_the_dashboard(live: Live, tmp_path: Path) -> None:
    prometheus = tool("prometheus", DEBIAN_PROMETHEUS)
    target = live.url.removeprefix("http://")
    key_file = tmp_path / "llmos_metrics_key"
    key_file.write_text(ADMIN_KEY + "\n")
    # The compose stack's scrape job, pointed at the live server and scraping every second.
    config = (MONITORING.parent / "prometheus" / "prometheus.yml").read_text()
    config = (
        config.replace("scrape_interval: 15s", "scrape_interval: 1s")
        .replace("evaluation_interval: 15s", "evaluation_interval: 1s")
        .replace("/run/secrets/llmos_metrics_key", str(key_file))
        .replace("llmos:8470", target)
        .replace("/etc/prometheus/rules/*.yml", str(RULES))
    )
    assert target in config and str(key_file) in config
    (tmp_path / "prometheus.yml").write_text(config)
    port = _free_port()
    log = (tmp_path / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [
            prometheus,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    api = f"http://127.0.0.1:{port}/api/v1"
    try:
        with httpx.Client(timeout=10) as c:

            def query(expr: str) -> list[dict[str, object]]:
                r = c.get(f"{api}/query", params={"query": concrete(expr)})
                assert r.status_code == 200, f"{expr}: {r.text}"
                return list(r.json()["data"]["result"])

            def until(check: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
                deadline = time.monotonic() + timeout
                while time.monotonic() < deadline:
                    if proc.poll() is not None:
                        pytest.fail(f"prometheus exited: {(tmp_path / 'prometheus.log').read_text()[-2000:]}")
                    try:
                        if check():
                            return
                    except httpx.HTTPError:
                        pass
                    time.sleep(0.2)
                pytest.fail(
                    f"timed out waiting for {what}: {(tmp_path / 'prometheus.log').read_text()[-2000:]}"
                )

            until(lambda: c.get(f"http://127.0.0.1:{port}/-/ready").status_code == 200, "prometheus ready")

            def scraped_with_the_key() -> bool:
                targets = c.get(f"{api}/targets").json()["data"]["activeTargets"]
                llmos = [t for t in targets if t["labels"]["job"] == "llmos"]
                return bool(llmos) and llmos[0]["health"] == "up"

            until(scraped_with_the_key, "the llmos target to be up (scraped with the admin key)")
            # Traffic between scrapes, so that rates have two points apart.
            throughput = "sum by (model) (rate(llmos_completion_tokens_total[$__rate_interval]))"
            with httpx.Client(base_url=live.url, timeout=30) as llmos:
                chat = {"model": "fake:1", "messages": MSG, "max_tokens": 8}

                def busy() -> bool:
                    r = llmos.post("/v1/chat/completions", json=chat, headers=live.admin)
                    assert r.status_code == 200
                    return any(float(s["value"][1]) > 0 for s in query(throughput))  # type: ignore[index]

                until(busy, "a throughput above zero")
            [series] = query(throughput)
            assert series["metric"] == {"model": "fake:1"}
            assert query('up{job="llmos"}')[0]["value"][1] == "1"  # type: ignore[index]
            # Every dashboard and rule expression is valid PromQL to this Prometheus, and the
            # dashboard's variables (Grafana's label_values) list the live model and tenants.
            for e in all_expressions():
                variable = LABEL_VALUES.match(e.expr)
                if variable is None:
                    query(e.expr)
                    continue
                metric, label = variable.groups()
                r = c.get(f"{api}/label/{label}/values", params={"match[]": metric})
                assert r.status_code == 200 and r.json()["data"], f"{e.where}: {r.text}"
            assert "fake:1" in c.get(f"{api}/label/model/values").json()["data"]
            assert {"acme", "thrifty"} <= set(c.get(f"{api}/label/tenant/values").json()["data"])

            def rules_evaluated() -> bool:
                groups = c.get(f"{api}/rules").json()["data"]["groups"]
                rules = [r for g in groups for r in g["rules"]]
                assert len(rules) == len(rule_expressions(RULES))
                assert all(r["health"] != "err" for r in rules), [r for r in rules if r["health"] == "err"]
                return all(r["health"] == "ok" for r in rules)

            until(rules_evaluated, "every rule to be evaluated without error")
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
