"""Without --cluster nothing of Ray is imported: the server, the kernel and ``llmos serve``'s path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_the_single_machine_server_never_imports_ray(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from llmos.cli.app import main\n"
        "from llmos.config import load_config\n"
        "from llmos.kernel import build_kernel\n"
        "from llmos.server import create_app\n"
        "kernel = build_kernel(load_config())\n"
        "create_app(kernel)\n"
        "assert kernel.cluster is None\n"
        "print('ray' in sys.modules, 'llmos.cluster.ray_host' in sys.modules or 'llmos.cluster.runtime' in sys.modules)\n"
    )
    env = {"LLMOS_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False"]
