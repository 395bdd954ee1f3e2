"""``/verify`` throughput with wrk: tokenward pinned to core 0, wrk on core 1, a bare Starlette app as baseline.

    .venv/bin/python bench/verify.py                 # 3 rounds x 5 s per case
    .venv/bin/python bench/verify.py --duration 3 --rounds 1   # quicker
    taskset -c 0 .venv/bin/python bench/verify.py --in-process   # µs per request, ASGI calls without a socket

Cases (all ``wrk -t1 -c32`` on 127.0.0.1, one uvicorn process with uvloop + httptools):

- **baseline**: a bare Starlette app whose one route returns 200 (same server, same pinning);
- **noop**: ``/verify?config_token=…`` with a ``noop`` plugin (token decoding cached);
- **app-token**: Basic ``user:twa_…`` via a *pointer* token to a token held in a file store — the
  design's budget case (≥ 20,000 req/s per core, ≥ 0.6 x baseline, p99 ≤ 5 ms);
- **htpasswd-apr1**: Basic against an apr1 htpasswd line (verified credential cached);
- **healthz**: tokenward's own ``/healthz`` — the floor set by the app and its middleware stack
  (request id, access log, metrics), to tell the framework's share from /verify's.

``--in-process`` calls the ASGI apps directly (no socket, no uvicorn, no wrk): microseconds per
request of the app alone, for the same cases and a bare Starlette app, to see where a change
lands before measuring it on the wire.

``--list-api`` runs the management case instead: ``GET /api/app-tokens`` with ``wrk -t1 -c200``
rotating over 500 users' own app tokens (Basic, 5 tokens each, one with ``tokenward:manage``; every
user behind its own ``X-Forwarded-For`` address) plus 10 % wrong tokens of the same users (401, then
429 once their address is banned), against the bare Starlette app on the same connections:
requests/s, p50 and p99, and the ratio.

The server logs at WARNING (the access log of 20k lines a second would measure the log pipe).
Figures only; the ratio to the baseline measured in the same run is the number to compare, since
other work on the machine moves the absolute figures. Needs ``wrk`` (``apt-get install -y wrk``)
and ``taskset``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from passlib.hash import apr_md5_crypt  # type: ignore[import-untyped]

from tokenward.datadir import DataDir
from tokenward.keys import TimeCode

BASELINE_APP = """
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route
import uvicorn, sys

async def ok(request):
    return Response(status_code=200)

app = Starlette(routes=[Route("/verify", ok)])
# The uvicorn options `tokenward serve` uses, so the two servers differ only by the app.
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False,
            server_header=False, proxy_headers=False)
"""

FORWARDED = {
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "app.example.com",
    "X-Forwarded-Uri": "/wiki/page?x=1",
    "X-Forwarded-Method": "GET",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_up(url: str, proc: subprocess.Popen[bytes], deadline: float = 30) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise SystemExit(f"server exited early ({proc.returncode})")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit("server did not start")


def wrk(url: str, headers: dict[str, str], duration: int) -> dict[str, float]:
    args = ["taskset", "-c", "1", "wrk", "-t1", "-c32", f"-d{duration}s", "--latency", "--timeout", "2s"]
    for name, value in headers.items():
        args += ["-H", f"{name}: {value}"]
    out = subprocess.run([*args, url], capture_output=True, text=True, timeout=duration + 30, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": rps,
        "p99_ms": float(p99.group(1)) * scale[p99.group(2)] if p99 else float("nan"),
        "non2xx": float(non2xx.group(1)) if non2xx else 0.0,
    }


def start(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(["taskset", "-c", "0", *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def setup(tmp: Path) -> tuple[dict[str, str], dict[str, str], str, str]:
    """Data dir, one app token, config tokens; returns (env, params per case, app token, apr1 password)."""
    data = DataDir(tmp / "data")
    data.create()
    data.write_server_name("auth.example.com")
    data.install_timecode(
        TimeCode.generate(now=time.time(), random_bytes=secrets.token_bytes(32)), now=time.time(), grace_seconds=0
    )
    store = tmp / "tokens.json"
    store.write_text("{}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENWARD_")}
    env.update(
        TOKENWARD_DATA_DIR=str(data.path),
        TOKENWARD_LOG_LEVEL="WARNING",
        TOKENWARD_CONFIG_TOKEN_STORES=json.dumps({"primary": {"adapter": "file", "options": {"path": str(store)}}}),
    )

    def cli(*args: str, stdin: str | None = None) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "tokenward", *args], env=env, input=stdin, capture_output=True, text=True, check=True
        )
        return result.stdout.splitlines()[0]

    app_token = cli("app-token", "create", "-u", "alice@example.com", "-e", "1d")
    password = secrets.token_urlsafe(12)
    htpasswd = f"bob:{apr_md5_crypt.hash(password)}"
    stored = cli("config-token", "create", "-", stdin=json.dumps({"tokenward": {"plugins": [{"type": "app_token"}]}}))
    store.write_text(json.dumps({"site": stored}))
    params = {
        "noop": cli("config-token", "create", "-", stdin='{"tokenward": {"plugins": [{"type": "noop"}]}}'),
        "app-token": cli("config-token", "create", "--pointer", "primary", "site"),
        "htpasswd-apr1": cli(
            "config-token",
            "create",
            "-",
            stdin=json.dumps({"tokenward": {"plugins": [{"type": "htpasswd", "htpasswd": htpasswd}]}}),
        ),
    }
    return env, params, app_token, password


async def in_process(tmp: Path, requests: int) -> None:
    """Microseconds per request through each ASGI app, called directly (best of 5 batches)."""
    import asyncio

    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    from tokenward.settings import Settings
    from tokenward.web.app import create_app

    env, tokens, app_token, password = setup(tmp)
    os.environ.update({k: v for k, v in env.items() if k.startswith("TOKENWARD_")})
    app = create_app(Settings.load())

    async def ok(request: object) -> Response:
        return Response(status_code=200)

    bare = Starlette(routes=[Route("/verify", ok)])
    startup: asyncio.Queue[Any] = asyncio.Queue()
    events: asyncio.Queue[Any] = asyncio.Queue()
    await startup.put({"type": "lifespan.startup"})
    life = asyncio.create_task(
        app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, startup.get, events.put)
    )
    await events.get()
    statuses: list[int] = []

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, object]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(int(message["status"]))  # type: ignore[call-overload]

    def headers(extra: dict[str, str]) -> list[tuple[bytes, bytes]]:
        merged = {"host": "127.0.0.1:8080", **FORWARDED, **extra}
        return [(k.lower().encode(), v.encode()) for k, v in merged.items()]

    auth = {
        "noop": {},
        "app-token": {"Authorization": basic("alice@example.com", app_token)},
        "htpasswd-apr1": {"Authorization": basic("bob", password)},
    }
    cases: dict[str, tuple[object, str, bytes, list[tuple[bytes, bytes]]]] = {
        "baseline": (bare, "/verify", b"", headers({})),
        "healthz": (app, "/healthz", b"", headers({})),
    }
    for case, token in tokens.items():
        cases[case] = (app, "/verify", f"config_token={token}".encode(), headers(auth[case]))
    print(f"in-process: {requests:,} requests per batch, best of 5 batches")
    print("| case | µs/request |")
    print("|---|---:|")

    def scope(path: str, query: bytes, raw: list[tuple[bytes, bytes]]) -> dict[str, object]:
        return {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": query,
            "root_path": "",
            "headers": list(raw),
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8080),
            "state": {},
        }

    for case, (target, path, query, raw) in cases.items():
        statuses.clear()
        best = float("inf")
        for batch in range(6):
            started = time.perf_counter()
            for _ in range(requests):
                await target(scope(path, query, raw), receive, send)  # type: ignore[operator]
            if batch:  # the first batch warms the caches
                best = min(best, (time.perf_counter() - started) / requests * 1e6)
        if set(statuses) != {200}:
            raise SystemExit(f"{case}: answered {sorted(set(statuses))}")
        print(f"| {case} | {best:.1f} |")
    await startup.put({"type": "lifespan.shutdown"})
    await life


def basic(user: str, password: str) -> str:
    import base64

    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


ROTATE_LUA = """
local auths = {}
for line in io.lines(os.getenv("TOKENWARD_BENCH_AUTHS")) do table.insert(auths, line) end
local path = os.getenv("TOKENWARD_BENCH_PATH")
local i = 0
request = function()
  i = i + 1
  local k = (i % #auths) + 1
  local ip = "10." .. math.floor(k / 62500) .. "." .. (math.floor(k / 250) % 250) .. "." .. (k % 250)
  return wrk.format("GET", path, {["Authorization"] = auths[k], ["X-Forwarded-For"] = ip})
end
"""


async def _list_api_users(data: Path, users: int, per_user: int) -> list[str]:
    """``users`` owners with ``per_user`` tokens each; the Basic header of each one's managing token."""
    from tokenward.runtime import open_runtime
    from tokenward.settings import Settings

    runtime = await open_runtime(Settings.load(data_dir=data), listen=False, eager=False)
    headers = []
    try:
        for u in range(users):
            owner = f"user{u}@example.com"
            for i in range(per_user):
                scopes = ["tokenward:manage"] if i == 0 else []
                _, token = await runtime.app_tokens.create(
                    owner=owner, created_by="bench", scopes=scopes, label=f"t{i}"
                )
                if i == 0:
                    headers.append(basic(owner, token))
    finally:
        await runtime.close()
    return headers


def wrk_rotating(url: str, path: str, auths: Path, script: Path, duration: int, connections: int) -> dict[str, float]:
    env = {**os.environ, "TOKENWARD_BENCH_AUTHS": str(auths), "TOKENWARD_BENCH_PATH": path}
    args = ["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "--timeout", "10s"]
    out = subprocess.run(
        [*args, "-s", str(script), url], capture_output=True, text=True, timeout=duration + 60, check=True, env=env
    ).stdout
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}

    def percentile(name: str) -> float:
        found = re.search(rf"{name}%\s+([\d.]+)(us|ms|s)\b", out)
        return float(found.group(1)) * scale[found.group(2)] if found else float("nan")

    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "p50_ms": percentile("50"),
        "p99_ms": percentile("99"),
        "non2xx": float(non2xx.group(1)) if non2xx else 0.0,
    }


def list_api(duration: int, rounds: int, users: int = 500, per_user: int = 5, connections: int = 200) -> None:
    """``GET /api/app-tokens`` at ``connections`` connections, many users, 10 % wrong tokens; bare Starlette beside."""
    import asyncio

    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        env, _, _, _ = setup(tmp)
        env["TOKENWARD_TRUSTED_PROXIES"] = "127.0.0.1/32"  # each user behind its own address: no shared ban
        good = asyncio.run(_list_api_users(Path(env["TOKENWARD_DATA_DIR"]), users, per_user))
        wrong = [basic(f"user{i}@example.com", f"twa_{secrets.token_urlsafe(30)}") for i in range(users // 10)]
        auths = tmp / "auths.txt"
        auths.write_text("\n".join(good + wrong) + "\n")
        lua = tmp / "rotate.lua"
        lua.write_text(ROTATE_LUA)
        base_port, port = free_port(), free_port()
        script = tmp / "baseline.py"
        script.write_text(BASELINE_APP)
        procs = [
            start([sys.executable, str(script), str(base_port)], env),
            start([sys.executable, "-m", "tokenward", "serve", "--port", str(port)], env),
        ]
        runs: dict[str, list[dict[str, float]]] = {"baseline": [], "list": []}
        try:
            wait_up(f"http://127.0.0.1:{base_port}/verify", procs[0])
            wait_up(f"http://127.0.0.1:{port}/healthz", procs[1], deadline=120)
            check = httpx.get(f"http://127.0.0.1:{port}/api/app-tokens", headers={"Authorization": good[0]}, timeout=10)
            if check.status_code != 200 or len(check.json()) != per_user:
                raise SystemExit(f"/api/app-tokens answered {check.status_code} {check.text[:200]}")
            targets = {
                "baseline": (f"http://127.0.0.1:{base_port}", "/verify"),
                "list": (f"http://127.0.0.1:{port}", "/api/app-tokens"),
            }
            for url, path in targets.values():
                wrk_rotating(url, path, auths, lua, 1, connections)  # warm up
            for _ in range(rounds):
                for case, (url, path) in targets.items():
                    runs[case].append(wrk_rotating(url, path, auths, lua, duration, connections))
        finally:
            for proc in procs:
                stop(proc)
    base = statistics.median(r["rps"] for r in runs["baseline"])
    print(
        f"GET /api/app-tokens: wrk -t1 -c{connections} -d{duration}s x {rounds} rounds, {users} users x {per_user} "
        f"tokens, {len(wrong)} wrong tokens among {len(good) + len(wrong)} credentials; server on core 0, wrk on core 1"
    )
    print("| case | median req/s | x baseline | median p50 ms | median p99 ms | worst p99 ms | non-2xx |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for case, each in runs.items():
        rps = statistics.median(r["rps"] for r in each)
        print(
            f"| {case} | {rps:,.0f} | {rps / base:.2f} | {statistics.median(r['p50_ms'] for r in each):.1f} | "
            f"{statistics.median(r['p99_ms'] for r in each):.1f} | {max(r['p99_ms'] for r in each):.1f} | "
            f"{sum(r['non2xx'] for r in each):.0f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run (1-60)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; each runs every case once, interleaved (1-10)")
    parser.add_argument("--in-process", action="store_true", help="time ASGI calls without a socket instead")
    parser.add_argument("--list-api", action="store_true", help="GET /api/app-tokens at 200 connections instead")
    opts = parser.parse_args()
    if opts.in_process:
        import asyncio

        with tempfile.TemporaryDirectory() as tmpdir:
            asyncio.run(in_process(Path(tmpdir), 20_000))
        return
    duration = max(1, min(60, opts.duration))
    rounds = max(1, min(10, opts.rounds))
    if opts.list_api:
        list_api(duration, rounds)
        return
    for tool in ("wrk", "taskset"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is missing: apt-get install -y wrk util-linux")
    runs: dict[str, list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        env, tokens, app_token, password = setup(tmp)
        base_port, port = free_port(), free_port()
        script = tmp / "baseline.py"
        script.write_text(BASELINE_APP)
        # Both servers stay up on core 0; only the one wrk is driving does work. Interleaving the cases
        # round by round spreads other load on the machine over all of them alike.
        procs = [
            start([sys.executable, str(script), str(base_port)], env),
            start([sys.executable, "-m", "tokenward", "serve", "--port", str(port)], env),
        ]
        try:
            wait_up(f"http://127.0.0.1:{base_port}/verify", procs[0])
            wait_up(f"http://127.0.0.1:{port}/healthz", procs[1])
            auth = {
                "noop": {},
                "app-token": {"Authorization": basic("alice@example.com", app_token)},
                "htpasswd-apr1": {"Authorization": basic("bob", password)},
            }
            cases: dict[str, tuple[str, dict[str, str]]] = {
                "baseline": (f"http://127.0.0.1:{base_port}/verify", {}),
                # The same server's /healthz: what the shared app and middleware cost before /verify does anything.
                "healthz": (f"http://127.0.0.1:{port}/healthz", {}),
            }
            for case, token in tokens.items():
                url = f"http://127.0.0.1:{port}/verify?config_token={token}"
                headers = {**FORWARDED, **auth[case]}
                check = httpx.get(url, headers=headers, timeout=5)
                if check.status_code != 200:
                    raise SystemExit(f"{case}: /verify answered {check.status_code} {check.text}")
                cases[case] = (url, headers)
            for url, headers in cases.values():
                wrk(url, headers, 1)  # warm up
            for _ in range(rounds):
                for case, (url, headers) in cases.items():
                    runs.setdefault(case, []).append(wrk(url, headers, duration))
        finally:
            for proc in procs:
                stop(proc)

    def best(case: str) -> dict[str, float]:
        return max(runs[case], key=lambda r: r["rps"])

    def median(case: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[case])

    base, base_median = best("baseline")["rps"], median("baseline", "rps")
    print(f"wrk -t1 -c32 -d{duration}s x {rounds} rounds, server on core 0, wrk on core 1")
    print("best round (least disturbed by other load) and median of rounds:")
    print(
        "| case | best req/s | x baseline | p99 ms (best) | median req/s | x baseline | worst p99 ms | non-2xx "
        "| req/s per round |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for case in runs:
        top, mid = best(case), median(case, "rps")
        each = ", ".join(f"{r['rps']:,.0f}" for r in runs[case])
        non2xx = sum(r["non2xx"] for r in runs[case])
        print(
            f"| {case} | {top['rps']:,.0f} | {top['rps'] / base:.2f} | {top['p99_ms']:.2f} | {mid:,.0f} | "
            f"{mid / base_median:.2f} | {max(r['p99_ms'] for r in runs[case]):.2f} | {non2xx:.0f} | {each} |"
        )


if __name__ == "__main__":
    main()
