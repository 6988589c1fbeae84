"""llama.cpp's own ``llama-server``, built from the sources vendored in the llama-cpp-python sdist
that llmos runs on, with the compile options ``scripts/setup`` gives our wheel, and cached outside
the repository (like the wheel) under a key of the version, the options and the CPU.

    python bench/llama_server_build.py            # build (or find) it and print its path

Only the ``llama-server`` target is built (Release, shared libraries beside the binary as in the
wheel, ``GGML_NATIVE`` at its default ON as in the wheel, ggml's AMX kernels left out: they die with
SIGILL on VMs that advertise AMX without its tile state). No web UI is fetched or built.
``LLMOS_LLAMA_CMAKE_ARGS`` adds options, as it does for the wheel.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

LLAMA_CPP_PYTHON = "0.3.36"
"""The llama-cpp-python release llmos pins (pyproject.toml, scripts/setup): its vendored llama.cpp."""
NO_AMX = "-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
"""The C/C++ flags scripts/setup builds our wheel with (a unit test keeps the two equal)."""
WHEEL_OPTIONS = (
    f"-DCMAKE_C_FLAGS={NO_AMX}",
    f"-DCMAKE_CXX_FLAGS={NO_AMX}",
    "-DCMAKE_BUILD_TYPE=Release",
    "-DGGML_NATIVE=ON",
    "-DBUILD_SHARED_LIBS=ON",
)
"""What decides the kernels: the same as the wheel's (scikit-build-core builds Release; the
wheel's CMakeLists turns shared libraries on and leaves GGML_NATIVE at its default, ON)."""
SERVER_OPTIONS = (
    "-DLLAMA_BUILD_COMMON=ON",
    "-DLLAMA_BUILD_TOOLS=ON",
    "-DLLAMA_BUILD_SERVER=ON",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_UI=OFF",
    "-DLLAMA_USE_PREBUILT_UI=OFF",
    "-DLLAMA_CURL=OFF",
    "-DLLAMA_OPENSSL=OFF",
    "-DCMAKE_BUILD_WITH_INSTALL_RPATH=ON",
    "-DCMAKE_INSTALL_RPATH=$ORIGIN",
)
"""What only makes a server binary that runs from the cache folder (no network at build time)."""
BINARY = "llama-server"


def cache_root(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    base = Path(env["XDG_CACHE_HOME"]) if env.get("XDG_CACHE_HOME") else Path.home() / ".cache"
    return base / "llmos-bench"


def cmake_options(extra: str = "") -> list[str]:
    """Every ``-D`` option of the build, ``extra`` (``LLMOS_LLAMA_CMAKE_ARGS``) last so it wins."""
    return [*WHEEL_OPTIONS, *SERVER_OPTIONS, *shlex.split(extra)]


def cpu_flags(cpuinfo: str) -> str:
    """The first ``flags`` line of ``/proc/cpuinfo`` (empty if none): a native build runs only on
    CPUs with the same features."""
    return next((line for line in cpuinfo.splitlines() if line.startswith("flags")), "")


def build_key(version: str, options: Sequence[str], machine: str, flags: str) -> str:
    """16 hex digits that change with anything that changes the binary."""
    text = "\n".join([version, *options, machine, flags])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def binary_dir(root: Path, version: str, key: str) -> Path:
    return root / f"llama-server-{version}-{key}"


def _read_cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return ""


def _fetch_sdist(version: str, dest: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "-q"]
    subprocess.run([*cmd, "-d", str(dest), f"llama-cpp-python=={version}"], check=True)
    return next(dest.glob("llama_cpp_python-*.tar.gz"))


def _extract_llama_cpp(sdist: Path, dest: Path) -> Path:
    """Extract the sdist's ``vendor/llama.cpp`` only; return its folder."""
    with tarfile.open(sdist) as tar:
        members = [m for m in tar.getmembers() if "/vendor/llama.cpp/" in m.name + "/"]
        if not members:
            raise RuntimeError(f"{sdist} has no vendor/llama.cpp")
        tar.extractall(dest, members=members, filter="data")
    return next(dest.glob("*/vendor/llama.cpp"))


def ensure_llama_server(
    version: str = LLAMA_CPP_PYTHON,
    *,
    sdist: Path | None = None,
    root: Path | None = None,
    jobs: int | None = None,
) -> Path:
    """The path of a cached ``llama-server`` binary, built first when missing (minutes).

    The build happens in a temporary folder; the finished binary and its libraries are moved into
    the cache in one rename, so an interrupted build leaves nothing half-made behind.
    """
    options = cmake_options(os.environ.get("LLMOS_LLAMA_CMAKE_ARGS", ""))
    key = build_key(version, options, platform.machine(), cpu_flags(_read_cpuinfo()))
    root = root or cache_root()
    final = binary_dir(root, version, key)
    if (final / BINARY).is_file():
        return final / BINARY
    root.mkdir(parents=True, exist_ok=True)
    print(f"building {BINARY} from llama-cpp-python {version}'s llama.cpp (minutes)", flush=True)
    with tempfile.TemporaryDirectory(prefix="build-", dir=root) as tmp:
        work = Path(tmp)
        source = _extract_llama_cpp(sdist or _fetch_sdist(version, work), work / "src")
        build = work / "build"
        generator = ["-G", "Ninja"] if shutil.which("ninja") else []
        subprocess.run(["cmake", "-S", str(source), "-B", str(build), *generator, *options], check=True)
        jobs = jobs or os.cpu_count() or 1
        subprocess.run(["cmake", "--build", str(build), "--target", BINARY, "-j", str(jobs)], check=True)
        staged = work / "out"
        staged.mkdir()
        for item in (build / "bin").iterdir():
            if item.name == BINARY or ".so" in item.name:
                shutil.copy2(item, staged / item.name, follow_symlinks=False)
        (staged / "cmake-options.txt").write_text("\n".join(options) + "\n")
        staged.rename(final)
    return final / BINARY


def server_version(binary: Path) -> str:
    """What ``llama-server --version`` says (its build number and commit)."""
    done = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=30)
    lines = [line.strip() for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    return next((line for line in lines if line.startswith("version")), lines[0] if lines else "unknown")


if __name__ == "__main__":
    path = ensure_llama_server(sdist=Path(sys.argv[1]) if len(sys.argv) > 1 else None)
    print(path)
    print(server_version(path))
