"""The Helm chart, rendered offline by Helm's own engine (the ``helm-python-sdk`` library) and
linted by it; every rendered manifest validated against the Kubernetes schemas
(``kubernetes-validate``) of the oldest and newest versions the chart supports. The Prometheus
Operator's kinds, which those schemas lack, are checked against what they point at."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from llmos.config import EngineConfig, Settings
from llmos.resources.estimate import EstimateParams, MiB, estimate_gguf

from .conftest import CHART, MONITORING, PIP_TOOLS, missing

KUBERNETES_VERSIONS = ("1.27.0", "1.37.0")
ENTRYPOINT_VARIABLES = {"LLMOS_ADMIN_KEY_FILE", "LLMOS_DATABASE_PASSWORD_FILE", "LLMOS_DATABASE_WAIT"}
EVERYTHING = {
    "replicaCount": 2,
    "postgresql": {"enabled": True},
    "serviceMonitor": {"enabled": True},
    "prometheusRule": {"enabled": True},
    "grafanaDashboard": {"enabled": True},
    "autoscaling": {"enabled": True},
}


@pytest.fixture(scope="module")
def helm() -> Any:
    try:
        import helm_python
    except ImportError:
        missing("the helm-python-sdk package", PIP_TOOLS)
    return helm_python


def render(helm: Any, values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    chart = helm.Chart.load(str(CHART))
    out = chart.render(values or {}, name="team", namespace="ai", is_install=True)
    docs = []
    for path, text in sorted(out.items()):
        if path.endswith(".yaml"):
            docs += [d for d in yaml.safe_load_all(text) if d]
    return docs


def one(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"{kind} {name}: {[d['metadata']['name'] for d in found]}"
    return found[0]


def llmos_container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    sts = one(docs, "StatefulSet", "team-llmos")
    [container] = sts["spec"]["template"]["spec"]["containers"]
    return dict(container)


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container["env"]}


def test_the_chart_lints_clean(helm: Any) -> None:
    for values in ({}, EVERYTHING):
        report = helm.lint(str(CHART), values, strict=True)
        errors = [m for m in report["messages"] if m["severity"] >= 2] + list(report["errors"])
        assert not errors, errors


@pytest.mark.parametrize("values", [{}, EVERYTHING, {"persistence": {"enabled": False}}])
def test_rendered_manifests_match_the_kubernetes_schemas(helm: Any, values: dict[str, Any]) -> None:
    try:
        import kubernetes_validate
    except ImportError:
        missing("the kubernetes-validate package", PIP_TOOLS)
    docs = render(helm, values)
    assert docs
    for doc in docs:
        if doc["apiVersion"].startswith("monitoring.coreos.com/"):
            continue  # not in Kubernetes' schemas: see test_prometheus_operator_resources
        for version in KUBERNETES_VERSIONS:
            kubernetes_validate.validate(doc, version, strict=True)


def test_a_broken_manifest_is_caught() -> None:
    import kubernetes_validate

    bad = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"}, "spec": {"portz": []}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, KUBERNETES_VERSIONS[-1], strict=True)


def test_the_server_pod(helm: Any) -> None:
    docs = render(helm)
    c = llmos_container(docs)
    pod = one(docs, "StatefulSet", "team-llmos")["spec"]["template"]["spec"]
    assert c["livenessProbe"]["httpGet"]["path"] == "/health"
    assert c["startupProbe"]["httpGet"]["path"] == "/health"
    assert c["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert c["args"][:3] == ["serve", "--drain-timeout", "30"]
    assert pod["terminationGracePeriodSeconds"] == 30 + 5 + 10
    assert pod["securityContext"]["runAsNonRoot"] is True and c["securityContext"]["readOnlyRootFilesystem"]
    sts = one(docs, "StatefulSet", "team-llmos")
    [claim] = sts["spec"]["volumeClaimTemplates"]
    assert {"name": "data", "mountPath": "/data"} in c["volumeMounts"]
    assert claim["metadata"]["name"] == "data" and claim["spec"]["resources"]["requests"]["storage"] == "20Gi"
    env = env_of(c)
    assert env["LLMOS_HOME"] == "/data" and env["LLMOS_AUTH"] == "required"
    assert "LLMOS_DATABASE_URL" not in env  # SQLite on the volume
    # The admin key: a Secret mounted as the file the entrypoint reads.
    secret = one(docs, "Secret", "team-llmos-admin")
    [volume] = [v for v in pod["volumes"] if v["name"] == "admin-key"]
    assert volume["secret"]["secretName"] == secret["metadata"]["name"]
    [item] = volume["secret"]["items"]
    assert item["key"] in secret["data"]
    mount = next(m for m in c["volumeMounts"] if m["name"] == "admin-key")
    assert env["LLMOS_ADMIN_KEY_FILE"] == f"{mount['mountPath']}/{item['path']}"


def test_every_setting_is_one_llmos_reads(helm: Any) -> None:
    known = {f"LLMOS_{name.upper()}" for name in Settings.model_fields} | ENTRYPOINT_VARIABLES
    for values in (
        {},
        EVERYTHING,
        {"database": {"url": "postgresql+psycopg://u@db/llmos", "existingSecret": "db"}},
    ):
        env = env_of(llmos_container(render(helm, values)))
        assert set(env) <= known, sorted(set(env) - known)


def test_memory_requests_follow_the_model_estimate(helm: Any) -> None:
    values = {"model": {"memoryEstimateMiB": 1000, "residentModels": 3}, "memory": {"serverMiB": 400}}
    c = llmos_container(render(helm, values))
    assert env_of(c)["LLMOS_MEMORY_BUDGET"] == str(3000 * MiB)
    assert c["resources"]["requests"]["memory"] == "3400Mi"
    assert c["resources"]["limits"]["memory"] == "4250Mi"  # +25% headroom
    explicit = {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"memory": "2Gi"}}
    assert llmos_container(render(helm, {"resources": explicit}))["resources"] == explicit


def test_the_default_estimate_is_what_llmos_computes(helm: Any, smollm2_gguf: Path) -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["model"]["name"] == "smollm2:135m"
    engine = values["engine"]
    params = EstimateParams.from_engine_config(
        EngineConfig(
            n_ctx=engine["nCtx"],
            n_slots=engine["nSlots"],
            n_batch=engine["nBatch"],
            cpu_weights=engine["cpuWeights"],
        )
    )
    estimate = estimate_gguf(smollm2_gguf, params)
    assert values["model"]["memoryEstimateMiB"] == round(estimate.total / MiB)


def test_more_than_one_replica_needs_a_shared_database(helm: Any) -> None:
    for values in ({"replicaCount": 2}, {"autoscaling": {"enabled": True}}):
        with pytest.raises(Exception, match="needs a shared database"):
            render(helm, values)
    with pytest.raises(Exception, match="holds a password"):
        render(helm, {"database": {"url": "postgresql+psycopg://u:secret@db/llmos"}})
    docs = render(helm, EVERYTHING)
    env = env_of(llmos_container(docs))
    service = one(docs, "Service", "team-llmos-postgresql")
    assert env["LLMOS_DATABASE_URL"] == "postgresql+psycopg://llmos@team-llmos-postgresql:5432/llmos"
    assert env["LLMOS_DATABASE_PASSWORD_FILE"] == "/run/secrets/database/password"
    pg = one(docs, "StatefulSet", "team-llmos-postgresql")
    assert pg["spec"]["template"]["metadata"]["labels"].items() >= service["spec"]["selector"].items()
    assert pg["spec"]["template"]["spec"]["containers"][0]["image"].startswith("pgvector/pgvector:")


def test_prometheus_operator_resources(helm: Any) -> None:
    docs = render(helm, EVERYTHING)
    monitor = one(docs, "ServiceMonitor")
    selector = monitor["spec"]["selector"]["matchLabels"]
    services = [
        d for d in docs if d["kind"] == "Service" and d["metadata"]["labels"].items() >= selector.items()
    ]
    assert [s["metadata"]["name"] for s in services] == ["team-llmos"]  # not the headless one too
    [endpoint] = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in services[0]["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"
    assert services[0]["metadata"]["labels"][monitor["spec"]["jobLabel"]] == "llmos"  # job="llmos"
    credentials = endpoint["authorization"]["credentials"]
    assert credentials["key"] in one(docs, "Secret", credentials["name"])["data"]
    rule = one(docs, "PrometheusRule")
    assert rule["spec"] == yaml.safe_load((MONITORING / "llmos-rules.yml").read_text())
    board = one(docs, "ConfigMap", "team-llmos-dashboard")
    assert board["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(board["data"]["llmos-dashboard.json"]) == json.loads(
        (MONITORING / "llmos-dashboard.json").read_text()
    )


def test_disruption_budget_and_autoscaler(helm: Any) -> None:
    docs = render(helm, EVERYTHING)
    sts = one(docs, "StatefulSet", "team-llmos")
    assert "replicas" not in sts["spec"]  # the autoscaler owns it
    pods = sts["spec"]["template"]["metadata"]["labels"]
    pdb = one(docs, "PodDisruptionBudget")
    assert (
        pdb["spec"]["maxUnavailable"] == 1 and pods.items() >= pdb["spec"]["selector"]["matchLabels"].items()
    )
    hpa = one(docs, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "name": "team-llmos",
    }
    [metric] = hpa["spec"]["metrics"]
    assert metric["pods"]["metric"]["name"] == "llmos_queue_wait_seconds"
    assert metric["pods"]["target"] == {"type": "AverageValue", "averageValue": "2"}
    rules = yaml.safe_load((MONITORING / "llmos-rules.yml").read_text())
    recorded = {r["record"] for g in rules["groups"] for r in g["rules"] if "record" in r}
    assert "llmos:queue_wait_seconds:mean2m" in recorded  # what the adapter serves under that name
