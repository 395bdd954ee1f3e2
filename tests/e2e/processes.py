"""Real tokenward processes for end-to-end tests: ports, environments, start, readiness, stop."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

__all__ = ["env_for", "free_port", "process_log", "serving", "start_process", "stop", "tokenward", "wait_ready"]

# A server's stderr goes to a file, never to a pipe nobody reads: a pipe fills after ~64 KiB of
# log lines and the server then blocks on its next write (a schemathesis run hung on that).
_LOGS: dict[int, Path] = {}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def env_for(data: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENWARD_")}
    env.update(TOKENWARD_DATA_DIR=str(data), **extra)
    return env


def tokenward(
    *args: str, env: dict[str, str], stdin: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run the ``tokenward`` CLI in a fresh interpreter, with ``stdin`` as its standard input when given."""
    return subprocess.run(
        [sys.executable, "-m", "tokenward", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_process(command: list[str], *, env: dict[str, str], cwd: Path | None = None) -> subprocess.Popen[str]:
    """Start ``command`` with stdout discarded and stderr in a log file (see ``process_log``)."""
    with tempfile.NamedTemporaryFile(prefix="tokenward-test-", suffix=".log", delete=False) as log:
        proc = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=log, text=True)
    _LOGS[proc.pid] = Path(log.name)
    return proc


def process_log(proc: subprocess.Popen[Any]) -> str:
    """What ``proc`` wrote to stderr so far (the last 20,000 characters)."""
    if proc.pid in _LOGS:
        return _LOGS[proc.pid].read_text(errors="replace")[-20_000:]
    return proc.stderr.read() if proc.stderr and not proc.stderr.closed else ""


def wait_ready(proc: subprocess.Popen[str], url: str, deadline: float = 180) -> None:
    """Wait for ``/healthz``: a readiness wait, not a timing assertion, so the deadline is generous
    (a loaded 2-core machine can take a minute to import and migrate)."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise AssertionError(f"server exited early: {process_log(proc)}")
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    proc.terminate()  # and show what it logged: the reason it is stuck is usually there
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    raise AssertionError(f"server did not become ready within {deadline} s: {process_log(proc)}")


def stop(proc: subprocess.Popen[Any], *, timeout: float = 15) -> None:
    """Terminate ``proc`` (kill it if it does not exit in ``timeout``) and close its pipes."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    for stream in (proc.stdout, proc.stderr):
        if stream:
            stream.close()
    log = _LOGS.pop(proc.pid, None)
    if log:
        log.unlink(missing_ok=True)


@contextlib.contextmanager
def serving(env: dict[str, str], *args: str, port: int | None = None) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """``tokenward serve`` on 127.0.0.1 (a free port unless given), ready; stopped on exit. Yields (url, process)."""
    port = port or free_port()
    proc = start_process([sys.executable, "-m", "tokenward", "serve", "--port", str(port), *args], env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(proc, url)
        yield url, proc
    finally:
        stop(proc)
