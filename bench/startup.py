"""Start-up benchmark: wall time of one-shot CLI commands and of `serve` until /readyz answers 200.

    .venv/bin/python bench/startup.py              # 5 runs per command, 3 serve starts
    .venv/bin/python bench/startup.py --runs 9 --serve-runs 5

Each command runs as a fresh process (the console script, as a user types it) on a data dir made
by `tokenward init`, SQLite in the data dir, and a moto S3 server on 127.0.0.1 for `config save`.
"cpu s" is the median user + system time of the process, less sensitive to a busy machine than wall
time. Baselines measured in the same run: `python -c pass` (interpreter start) and `python -c "import
sqlalchemy.ext.asyncio"` (one heavy import). The figure is the median wall time; "x pass" is the
ratio to the interpreter's own start. Target (issue 19): one-shot commands that do no network
work under 1 s. Figures only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.e2e.processes import free_port, stop
from tests.s3server import ACCESS_KEY, SECRET_KEY, make_bucket, start_moto

BIN = Path(sys.executable).parent
TOKENWARD = str(BIN / "tokenward")
SERVER = "auth.example.com"


CPU: dict[int, float] = {}  # id(times list) -> CPU seconds (user + system) of the same runs


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(command: list[str], env: dict[str, str], runs: int) -> list[float]:
    times, cpu = [], []
    for _ in range(runs):
        before = children_cpu()
        start = time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
        times.append(time.perf_counter() - start)
        cpu.append(children_cpu() - before)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed ({done.returncode}): {done.stderr.strip()}")
    CPU[id(times)] = statistics.median(cpu)
    return times


def serve_ready(env: dict[str, str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        port = free_port()
        start = time.perf_counter()
        proc = subprocess.Popen(
            [TOKENWARD, "serve", "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        try:
            while True:
                if proc.poll() is not None:
                    raise SystemExit(f"serve exited: {proc.stderr.read().decode() if proc.stderr else ''}")
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.perf_counter() - start > 180:
                    raise SystemExit("serve was not ready within 180 s")
                time.sleep(0.01)
            times.append(time.perf_counter() - start)
        finally:
            stop(proc)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per one-shot command")
    parser.add_argument("--serve-runs", type=int, default=3, help="serve starts")
    args = parser.parse_args()
    moto_url, moto = start_moto()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            s3 = make_bucket(moto_url)
            env = {k: v for k, v in os.environ.items() if not k.startswith(("TOKENWARD_", "AWS_"))}
            env["TOKENWARD_DATA_DIR"] = str(Path(tmp) / "data")
            timed([TOKENWARD, "init", "--server-name", SERVER, "--admin", "alice@example.com"], env, 1)
            s3_env = {
                **env,
                "TOKENWARD_S3_URL": moto_url,
                "TOKENWARD_S3_BUCKET": s3.bucket,
                "TOKENWARD_S3_ACCESS_KEY": ACCESS_KEY,
                "TOKENWARD_S3_SECRET_KEY": SECRET_KEY,
            }
            s3_env["TOKENWARD_CONFIG_KEY"] = subprocess.run(
                [TOKENWARD, "config", "keygen"], env=env, capture_output=True, text=True, check=True
            ).stdout.strip()
            timed([TOKENWARD, "db", "upgrade"], env, 1)  # the first migration is not start-up time
            py = sys.executable
            rows: list[tuple[str, list[float], bool]] = [
                ("python -c pass (baseline)", timed([py, "-c", "pass"], env, args.runs), False),
                (
                    "python -c 'import sqlalchemy.ext.asyncio' (baseline)",
                    timed([py, "-c", "import sqlalchemy.ext.asyncio"], env, args.runs),
                    False,
                ),
                ("tokenward --version", timed([TOKENWARD, "--version"], env, args.runs), True),
                ("tokenward --help", timed([TOKENWARD, "--help"], env, args.runs), True),
                ("tokenward server-name", timed([TOKENWARD, "server-name"], env, args.runs), True),
                (
                    "tokenward app-hash https://app.example.com",
                    timed([TOKENWARD, "app-hash", "https://app.example.com"], env, args.runs),
                    True,
                ),
                (
                    "tokenward policy check alice@example.com auth.example.com TOKENWARD admin",
                    timed(
                        [TOKENWARD, "policy", "check", "alice@example.com", SERVER, "TOKENWARD", "admin"],
                        env,
                        args.runs,
                    ),
                    True,
                ),
                ("tokenward db current (SQLite)", timed([TOKENWARD, "db", "current"], env, args.runs), True),
                ("tokenward app-token list (SQLite)", timed([TOKENWARD, "app-token", "list"], env, args.runs), True),
                (
                    "tokenward config save (moto S3, network)",
                    timed([TOKENWARD, "config", "save"], s3_env, args.runs),
                    False,
                ),
            ]
            ready = serve_ready(env, args.serve_runs)
    finally:
        stop(moto)
    base = statistics.median(rows[0][1])
    print(f"{'command':<76} {'median s':>9} {'min s':>7} {'cpu s':>6} {'x pass':>7}  target < 1 s")
    for name, times, target in rows:
        median = statistics.median(times)
        verdict = ("ok" if median < 1.0 else "OVER") if target else ""
        cpu = CPU[id(times)]
        print(f"{name:<76} {median:9.2f} {min(times):7.2f} {cpu:6.2f} {median / base:7.1f}  {verdict}")
    median = statistics.median(ready)
    label = "tokenward serve until /readyz 200 (SQLite)"
    print(f"{label:<76} {median:9.2f} {min(ready):7.2f} {'':>6} {median / base:7.1f}")
    print(f"\n{args.runs} runs per command, {args.serve_runs} serve starts; load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
