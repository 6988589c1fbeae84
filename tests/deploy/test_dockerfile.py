"""The Dockerfile, linted with hadolint, and held to what the image promises: llama.cpp built
once in a builder stage with the flags scripts/setup uses, a runtime stage without a compiler,
a non-root user, LLMOS_HOME on a volume, a HEALTHCHECK on /health, extras chosen by a build
argument, and a .dockerignore that sends only what the build reads."""

from __future__ import annotations

import re
import subprocess

from .conftest import PIP_TOOLS, ROOT, tool

DOCKERFILE = ROOT / "Dockerfile"


def stages() -> dict[str, str]:
    text = DOCKERFILE.read_text()
    parts = re.split(r"^FROM\s+\S+\s+AS\s+(\w+)\s*$", text, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_hadolint_passes() -> None:
    hadolint = tool("hadolint", PIP_TOOLS)
    done = subprocess.run(
        [hadolint, "--config", str(ROOT / ".hadolint.yaml"), str(DOCKERFILE)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_hadolint_catches_a_bad_dockerfile(tmp_path) -> None:  # type: ignore[no-untyped-def]
    hadolint = tool("hadolint", PIP_TOOLS)
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM debian:latest\nRUN apt-get install curl\n")
    done = subprocess.run([hadolint, str(bad)], capture_output=True, text=True)
    assert done.returncode != 0 and "DL3007" in done.stdout  # the :latest tag


def test_llama_cpp_is_built_once_with_the_setup_flags() -> None:
    s = stages()
    assert list(s) == ["builder", "runtime"]
    builder, runtime = s["builder"], s["runtime"]
    assert builder.count("pip wheel") == 1 and "llama-cpp-python==${LLAMA_CPP_PYTHON_VERSION}" in builder
    setup = (ROOT / "scripts" / "setup").read_text()
    no_amx = re.search(r'no_amx="([^"]+)"', setup)
    assert no_amx is not None and no_amx.group(1) in builder
    assert re.search(r'llama_version="([^"]+)"', setup).group(1) in builder  # type: ignore[union-attr]
    for flag in (
        "-DLLAMA_BUILD_EXAMPLES=OFF",
        "-DLLAMA_BUILD_TESTS=OFF",
        "-DLLAMA_BUILD_TOOLS=OFF",
        "-DLLAMA_BUILD_SERVER=OFF",
        "-DLLAVA_BUILD=OFF",
        "-DCMAKE_PROJECT_llama.cpp_INCLUDE=",
    ):
        assert flag in builder and flag in setup
    assert "COPY scripts/cmake/no-common.cmake" in builder
    assert "build-essential" not in runtime and "cmake" not in runtime
    assert "COPY --from=builder /opt/llmos /opt/llmos" in runtime


def test_the_runtime_image() -> None:
    runtime = stages()["runtime"]
    user = re.search(r"^USER\s+(\S+)", runtime, re.M)
    assert user is not None and user.group(1).split(":")[0] not in ("root", "0")
    assert re.search(r'^VOLUME \["/data"\]', runtime, re.M) and "LLMOS_HOME=/data" in runtime
    healthcheck = re.search(r"^HEALTHCHECK .*?\n(?:\s+.*\n)*", runtime, re.M)
    assert healthcheck is not None and "/health" in healthcheck.group(0)
    assert 'ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/llmos-entrypoint"]' in runtime
    assert "deploy/docker-entrypoint.sh /usr/local/bin/llmos-entrypoint" in runtime
    assert not re.search(r"\.gguf|llmos pull", DOCKERFILE.read_text())  # no model baked in
    builder = stages()["builder"]
    assert "ARG LLMOS_EXTRAS=postgres" in builder and '"/src[${LLMOS_EXTRAS}]"' in builder


def test_the_build_context_is_only_what_the_build_reads() -> None:
    ignore = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()]
    rules = [line for line in ignore if line and not line.startswith("#")]
    assert rules[0] == "*"  # everything out (the venv, .git, caches, models) ...
    sources = set()
    for line in DOCKERFILE.read_text().splitlines():
        m = re.match(r"COPY\s+(?:--chmod=\S+\s+)?(?!--from)(.+)\s+\S+$", line)
        if m:
            sources.update(m.group(1).split())
    assert sources == {
        "pyproject.toml",
        "README.md",
        "src",
        "deploy/docker-entrypoint.sh",
        "scripts/cmake/no-common.cmake",
    }
    for source in sources:  # ... but what the build copies
        assert f"!{source}" in rules or f"!{source}/" in rules, source
        assert (ROOT / source).exists()
