"""deploy/compose.yaml through Docker Compose's own parser and validator (``docker-compose
config``, client side: no Docker engine is needed), with secrets from files and, through the
override file, from the environment."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from llmos.config import Settings

from .conftest import DEPLOY, PIP_TOOLS, tool

ENTRYPOINT_VARIABLES = {"LLMOS_ADMIN_KEY_FILE", "LLMOS_DATABASE_PASSWORD_FILE", "LLMOS_DATABASE_WAIT"}
SECRETS = ("llmos_admin_key", "postgres_password", "grafana_admin_password")


def config(*files: str, env: dict[str, str]) -> dict[str, Any]:
    compose = tool("docker-compose", PIP_TOOLS)
    args = [compose, "--project-directory", str(DEPLOY)]
    for f in files:
        args += ["-f", str(DEPLOY / f)]
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("LLMOS_", "POSTGRES_", "GRAFANA_"))}
    done = subprocess.run(
        [*args, "config", "--format", "json"], capture_output=True, text=True, env={**clean, **env}
    )
    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout)
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture
def secret_files(tmp_path: Path) -> dict[str, str]:
    env = {}
    for name in SECRETS:
        path = tmp_path / name
        path.write_text(f"test-{name}\n")
        env[f"{name.upper()}_FILE"] = str(path)
    return env


def test_the_stack(secret_files: dict[str, str]) -> None:
    c = config("compose.yaml", env=secret_files)
    services = c["services"]
    assert set(services) == {"postgres", "llmos", "prometheus", "grafana"}
    assert services["postgres"]["image"].startswith("pgvector/pgvector:")
    # Health-checked start order.
    assert services["llmos"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["prometheus"]["depends_on"]["llmos"]["condition"] == "service_healthy"
    assert services["grafana"]["depends_on"]["prometheus"]["condition"] == "service_healthy"
    for name, service in services.items():
        assert service.get("healthcheck", {}).get("test"), name
    assert any("/health" in part for part in services["llmos"]["healthcheck"]["test"])
    # The image is built from the repository's Dockerfile, CPU-only by default.
    build = services["llmos"]["build"]
    assert Path(build["context"]) == DEPLOY.parent and build["dockerfile"] == "Dockerfile"
    assert build["args"]["LLMOS_EXTRAS"] == "postgres"
    # Secrets: files named by the environment, mounted where the services read them.
    for name in SECRETS:
        assert c["secrets"][name]["file"] == secret_files[f"{name.upper()}_FILE"]
    env = services["llmos"]["environment"]
    assert env["LLMOS_ADMIN_KEY_FILE"] == "/run/secrets/llmos_admin_key"
    assert env["LLMOS_DATABASE_PASSWORD_FILE"] == "/run/secrets/postgres_password"
    assert env["LLMOS_DATABASE_URL"].startswith("postgresql+psycopg://llmos@postgres:5432/")
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD_FILE"] == "/run/secrets/postgres_password"
    assert services["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD__FILE"].startswith("/run/secrets/")
    known = {f"LLMOS_{n.upper()}" for n in Settings.model_fields} | ENTRYPOINT_VARIABLES
    llmos_vars = {k for k in env if k.startswith("LLMOS_")}
    assert llmos_vars <= known, sorted(llmos_vars - known)
    # Prometheus reads the admin key from the secret file its scrape job names.
    [metrics_key] = services["prometheus"]["secrets"]
    scrape = (DEPLOY / "prometheus" / "prometheus.yml").read_text()
    assert f"credentials_file: {metrics_key['target']}" in scrape or metrics_key["target"] in scrape
    # Every file the stack mounts exists in the repository.
    for service in services.values():
        for volume in service.get("volumes", []):
            if volume["type"] == "bind":
                assert Path(volume["source"]).exists(), volume["source"]
    # Only llmos is published beyond loopback.
    for name in ("prometheus", "grafana"):
        assert all(p["host_ip"] == "127.0.0.1" for p in services[name]["ports"]), name
    assert c["networks"]["backend"]["internal"] is True
    assert services["postgres"]["networks"].keys() == {"backend"}


def test_secrets_from_the_environment() -> None:
    env = {"LLMOS_ADMIN_KEY": "sk-llmos-x", "POSTGRES_PASSWORD": "pw", "GRAFANA_ADMIN_PASSWORD": "g"}
    c = config("compose.yaml", "compose.env-secrets.yaml", env=env)
    assert c["secrets"]["llmos_admin_key"] == {
        "name": "llmos_llmos_admin_key",
        "environment": "LLMOS_ADMIN_KEY",
    }
    assert c["secrets"]["postgres_password"]["environment"] == "POSTGRES_PASSWORD"
    assert all("file" not in s for s in c["secrets"].values())


def test_an_invalid_file_is_refused(tmp_path: Path) -> None:
    compose = tool("docker-compose", PIP_TOOLS)
    bad = tmp_path / "compose.yaml"
    bad.write_text(
        "services:\n  x:\n    image: busybox\n    depends_on:\n      y: {condition: service_healthy}\n"
    )
    done = subprocess.run([compose, "-f", str(bad), "config"], capture_output=True, text=True)
    assert done.returncode != 0 and "y" in done.stderr
