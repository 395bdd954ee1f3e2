"""`make dist`'s wheel installs into a fresh virtualenv and runs: --version, init, db upgrade, serve.

The build is what `make dist` runs (sdist, then the wheel from the sdist), without build isolation so it
needs no download. The fresh venv gets the wheel with pip (``--no-deps``); its dependencies come from
this test venv through a .pth line (installing ~40 packages would take minutes on a loaded machine),
and ``pip check`` proves the wheel's declared requirements are met by them. Every tokenward module
and data file comes from the wheel: the test checks where ``tokenward`` is imported from.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import httpx
import pytest

from tests.e2e.processes import free_port, stop, wait_ready
from tokenward import __version__

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str | Path, env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=300, env=env, cwd=cwd or ROOT)
    assert done.returncode == 0, f"{' '.join(map(str, args))}: {done.stdout}\n{done.stderr}"
    return done.stdout


def test_wheel_installs_into_a_fresh_venv_and_serves(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    run(sys.executable, "-m", "build", "--no-isolation", "--outdir", dist, ROOT)
    wheels = list(dist.glob("tokenward-*-py3-none-any.whl"))
    assert [w.name for w in wheels] == [f"tokenward-{__version__}-py3-none-any.whl"]
    assert list(dist.glob(f"tokenward-{__version__}.tar.gz"))

    fresh = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(fresh)
    python = fresh / "bin" / "python"
    run(sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps", "--no-index", wheels[0])
    purelib = run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").strip()
    (Path(purelib) / "_tokenward_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    run(sys.executable, "-m", "pip", "--python", python, "check")

    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENWARD_")}
    env["TOKENWARD_DATA_DIR"] = str(tmp_path / "data")
    where = run(python, "-c", "import tokenward; print(tokenward.__file__)", env=env, cwd=tmp_path)
    assert where.startswith(str(fresh)), f"tokenward imported from {where}, not from the wheel"
    script = fresh / "bin" / "tokenward"
    assert run(script, "--version", env=env, cwd=tmp_path) == f"tokenward {__version__}\n"
    assert "Initialized" in run(script, "init", "--server-name", "auth.example.com", env=env, cwd=tmp_path)
    assert run(script, "db", "upgrade", env=env, cwd=tmp_path).strip()  # migrations ship in the wheel
    assert len(run(script, "app-hash", "https://app.example.com", env=env, cwd=tmp_path).strip()) == 128

    port = free_port()
    proc = subprocess.Popen(
        [script, "serve", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(proc, url)
        assert httpx.get(url + "/readyz", timeout=30).status_code == 200
        login = httpx.get(url + "/login", timeout=30)  # templates and static files ship in the wheel
        assert login.status_code == 200 and "<form" in login.text
        assert httpx.get(url + "/static/style.css", timeout=30).status_code == 200
    finally:
        stop(proc)
