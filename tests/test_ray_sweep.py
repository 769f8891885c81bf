"""The sweep on a Ray cluster: a local head node started by the test, reached by its address.

The head listens on this machine only and lives as long as the module; it and its clients run with
Ray's token authentication off (``RAY_AUTH_MODE=disabled``): with it on, Ray 2.60 on this machine
refused the test's own client ("InvalidAuthToken") although both read the same token file.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ray")
    import socket

    with socket.socket() as sock:  # a free port on this machine
        sock.bind(("127.0.0.1", 0))
        port = str(sock.getsockname()[1])
    cmd = [str(Path(sys.executable).parent / "ray"), "start", "--head", f"--port={port}", "--num-cpus=2",
           "--include-dashboard=false", f"--temp-dir={tmp}", "--disable-usage-stats"]  # fmt: skip
    before = os.environ.get("RAY_AUTH_MODE")
    os.environ["RAY_AUTH_MODE"] = "disabled"  # the head and the sweeps the test starts (module docstring)
    try:
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)
        yield f"127.0.0.1:{port}"
        subprocess.run([str(Path(sys.executable).parent / "ray"), "stop", "--force"], capture_output=True, timeout=120)
    finally:
        if before is None:
            os.environ.pop("RAY_AUTH_MODE", None)
        else:
            os.environ["RAY_AUTH_MODE"] = before


def test_sweep_on_ray_equals_local(ray_head, tmp_path):
    args = ["sweep", "--policy", "greedy", "--policy", "random", "--scenario", "small", "--load", "0.2",
            "--load", "0.4", "--seeds", "2", "--slots", "60", "--warmup", "10"]  # fmt: skip
    out_ray, out_local = tmp_path / "ray.json", tmp_path / "local.json"
    proc = subprocess.run([sys.executable, "-m", "comllm", *args, "--ray", ray_head, "--json", str(out_ray)],
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    proc = subprocess.run([sys.executable, "-m", "comllm", *args, "--json", str(out_local)],
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    on_ray, local = json.loads(out_ray.read_text()), json.loads(out_local.read_text())
    assert len(on_ray) == 4
    key = lambda r: (r["policy"], r["scenario"])  # noqa: E731
    for a, b in zip(sorted(on_ray, key=key), sorted(local, key=key)):
        assert key(a) == key(b) and a["avg_latency"] == b["avg_latency"] and a["n_tasks"] == b["n_tasks"]
