"""``/verify`` throughput with wrk: tokenward pinned to core 0, wrk on core 1, a bare Starlette app as baseline.

    .venv/bin/python bench/verify.py                 # 3 rounds x 5 s per case
    .venv/bin/python bench/verify.py --duration 3 --rounds 1   # quicker
    taskset -c 0 .venv/bin/python bench/verify.py --in-process   # µs per request, ASGI calls without a socket

Cases (all ``wrk -t1 -c32`` on 127.0.0.1, one uvicorn process with httptools on the asyncio loop, or on
uvloop with ``--loop uvloop``: both servers alike, ``TOKENWARD_EVENT_LOOP`` for tokenward):

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

``--rotating [--database sqlite|postgresql]`` runs issue 13's cases instead, each beside the bare
Starlette app in the same run (wrk -t1 -c32, a Lua script rotating over one header per credential, every
request from its own ``X-Forwarded-For`` address with the loopback proxy trusted):

- **app-tokens**: 100,000 distinct app tokens (``--tokens``; one owner each, inserted in bulk with their
  HMACs under the instance's app-token key) through the pointer token to the ``app_token`` plugin;
- **sessions**: 10,000 browser sessions (``--sessions``) issued by the runtime's SessionService, sent
  as the ``tokenward_session`` cookie to a ``source_identifier`` plugin;
- **mixed**: the app tokens alternating with as many invalid ones (well-formed, right checksum, unknown
  ids of unknown users; one in ten garbage);

with p50/p99, the ratio to bare, the SQL statements per second (``tokenward_sql_statements_total``), the server's
CPU (user + system) per request and the system part of it, with the bare app's over it (req/s moves with the host's
other guests, CPU time much less), how much of that CPU ran off the event loop's thread (the SQL drivers' threads:
the write-behind flushes, the feed's polls), and the status mix (``tokenward_http_requests_total``) of each measured
window. The last line derives what a refusal costs beside an acceptance (2 x mixed - app-tokens, in CPU per request)
and the mean that 0.5 x bare allows. Warm-up is explicit: every credential once (wrk until the server has answered
as many ``/verify``), reported apart. The server's VmRSS is read before any bulk credential exists (a first start on
the same data), at start, and after each warm-up.

``--rotating --in-process`` runs the same three cases and the bare app without a socket: thread CPU µs per
request through the ASGI app (best of 3 batches after every credential once) and how many garbage
collections of each generation the batches ran, with the longest generation-2 one (the p99 tails on the wire).
It needs neither wrk nor a quiet machine to show where a change lands.

``--rotating --server-env TOKENWARD_NAME=VALUE`` (repeatable) gives the tokenward server a setting for the whole run,
to measure what one part costs beside the same bare app: ``TOKENWARD_REGULATION_BAN_TIME_SECONDS=0`` runs the cases
without brute-force regulation, for one.

The server logs at WARNING (the access log of 20k lines a second would measure the log pipe).
Figures only; the ratio to the baseline measured in the same run is the number to compare, since
other work on the machine moves the absolute figures. Needs ``wrk`` (``apt-get install -y wrk``)
and ``taskset``.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
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
import os
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False,
            server_header=False, proxy_headers=False, loop=os.environ.get("TOKENWARD_EVENT_LOOP", "asyncio"))
"""

FORWARDED = {
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "app.example.com",
    "X-Forwarded-Uri": "/wiki/page?x=1",
    "X-Forwarded-Method": "GET",
}


SESSION_COOKIE = "tokenward_session"
#: The event loop both servers run (--loop); a one-item list so main() can set it.
EVENT_LOOP = ["asyncio"]


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
    # stderr to a file nobody has to drain: a pipe left unread fills at 64 kB and then blocks the server's logging.
    with tempfile.NamedTemporaryFile(prefix="tokenward-bench-", suffix=".log", delete=False) as log:
        return subprocess.Popen(["taskset", "-c", "0", *args], env=env, stdout=subprocess.DEVNULL, stderr=log)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def setup(tmp: Path, extra_env: dict[str, str] | None = None) -> tuple[dict[str, str], dict[str, str], str, str]:
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
        TOKENWARD_EVENT_LOOP=EVENT_LOOP[0],  # both servers: tokenward's setting, and the bare app reads it too
    )
    env.update(extra_env or {})

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
        "session": cli(
            "config-token",
            "create",
            "-",
            stdin=json.dumps({"tokenward": {"plugins": [{"type": "source_identifier", "cookie": SESSION_COOKIE}]}}),
        ),
    }
    return env, params, app_token, password


async def in_process(tmp: Path, requests: int) -> None:
    """Microseconds per request through each ASGI app, called directly (best of 5 batches)."""

    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    from tokenward.settings import Settings
    from tokenward.web.app import create_app

    env, tokens, app_token, password = setup(tmp)
    del tokens["session"]  # the rotating cases' (--rotating)
    os.environ.update({k: v for k, v in env.items() if k.startswith("TOKENWARD_")})
    app = create_app(Settings.load())

    async def ok(request: object) -> Response:
        return Response(status_code=200)

    bare = Starlette(routes=[Route("/verify", ok)])
    async with _lifespan(app):
        await _in_process_cases(app, bare, tokens, app_token, password, requests)


async def _in_process_cases(
    app: Any, bare: Any, tokens: dict[str, str], app_token: str, password: str, requests: int
) -> None:
    import asyncio

    statuses: list[int] = []

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, object]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(int(message["status"]))  # type: ignore[call-overload]

    def headers(extra: dict[str, str]) -> list[tuple[bytes, bytes]]:
        merged = {**FORWARDED, **extra}
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

    for case, (target, path, query, raw) in cases.items():
        statuses.clear()
        best = float("inf")
        for batch in range(6):
            started = time.perf_counter()
            for i in range(requests):
                await target(_get_scope(path, query, raw), receive, send)  # type: ignore[operator]
                if i % 64 == 0:
                    # Let the background tasks run as a server would: a change feed never read goes stale, and
                    # /verify then refuses with 503 changes_stale.
                    await asyncio.sleep(0)
            if batch:  # the first batch warms the caches
                best = min(best, (time.perf_counter() - started) / requests * 1e6)
        if set(statuses) != {200}:
            raise SystemExit(f"{case}: answered {sorted(set(statuses))}")
        print(f"| {case} | {best:.1f} |")


def _get_scope(path: str, query: bytes, headers: list[tuple[bytes, bytes]]) -> dict[str, object]:
    """An ASGI ``GET`` scope from 127.0.0.1 for the in-process modes (a ``host`` header first, then ``headers``)."""
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
        "headers": [(b"host", b"127.0.0.1:8080"), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8080),
        "state": {},
    }


@contextlib.asynccontextmanager
async def _lifespan(app: Any) -> AsyncIterator[None]:
    """Run ``app``'s ASGI lifespan around the block (start-up before it, shutdown after)."""
    import asyncio

    startup: asyncio.Queue[Any] = asyncio.Queue()
    events: asyncio.Queue[Any] = asyncio.Queue()
    await startup.put({"type": "lifespan.startup"})
    life = asyncio.create_task(
        app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, startup.get, events.put)
    )
    await events.get()
    try:
        yield
    finally:
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


async def _list_api_users(data: Path, users: int, per_user: int, database_url: str | None = None) -> list[str]:
    """``users`` owners with ``per_user`` tokens each; the Basic header of each one's managing token."""
    from tokenward.runtime import open_runtime
    from tokenward.settings import Settings

    runtime = await open_runtime(Settings.load(data_dir=data, database_url=database_url), listen=False, eager=False)
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


def list_api(
    duration: int,
    rounds: int,
    database: str = "sqlite",
    users: int = 500,
    per_user: int = 5,
    connections: int = 200,
    wrong_share: float = 0.1,
) -> None:
    """``GET /api/app-tokens`` at ``connections`` connections, many users, 10 % wrong tokens; bare Starlette beside."""
    import asyncio
    from contextlib import ExitStack

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.storage.servers import fresh_database_url

    with tempfile.TemporaryDirectory() as tmpdir, ExitStack() as stack:
        tmp = Path(tmpdir)
        extra = {"TOKENWARD_TRUSTED_PROXIES": "127.0.0.1/32"}  # each user behind its own address: no shared ban
        database_url = None
        if database != "sqlite":
            database_url = extra["TOKENWARD_DATABASE_URL"] = stack.enter_context(fresh_database_url(database, tmp))
        env, _, _, _ = setup(tmp, extra)
        good = asyncio.run(_list_api_users(Path(env["TOKENWARD_DATA_DIR"]), users, per_user, database_url))
        # Wrong tokens of real users: once a user's failures ban the account, its failures answer after the
        # 1 s account delay (docs/regulation.md), so with wrong tokens in the mix p99 includes that brake.
        wrong = [
            basic(f"user{i}@example.com", f"twa_{secrets.token_urlsafe(30)}") for i in range(int(users * wrong_share))
        ]
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
        f"{database}: GET /api/app-tokens: wrk -t1 -c{connections} -d{duration}s x {rounds} rounds, "
        f"{users} users x {per_user} tokens, {len(wrong)} wrong tokens among {len(good) + len(wrong)} credentials; "
        "server on core 0, wrk on core 1"
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


# -- --rotating: many distinct credentials (issue 13) -------------------------------------------------------------

ROTATE_HEADERS_LUA = """
-- Each line of TOKENWARD_BENCH_LINES is one header ("Name: value"); request i sends line i (rotating) with
-- the forward-auth headers and its own X-Forwarded-For address (10.a.b.c from TOKENWARD_BENCH_FIRST_ADDRESS + i,
-- which goes on from where the last run stopped), so no two requests of a bench share a client address and
-- per-address bans never turn it into 429s. (Starting every run at 10.0.0.0 paired the same addresses with the
-- same invalid lines in every round: the third round of the mixed case banned every one of them at once.)
local lines = {}
for line in io.lines(os.getenv("TOKENWARD_BENCH_LINES")) do
  local name, value = line:match("^([^:]+): (.*)$")
  table.insert(lines, {name, value})
end
local path = os.getenv("TOKENWARD_BENCH_PATH")
local first = tonumber(os.getenv("TOKENWARD_BENCH_FIRST_ADDRESS") or "0")
local i = 0
request = function()
  i = i + 1
  local line = lines[(i % #lines) + 1]
  local n = (first + i) % 16777216
  local ip = "10." .. math.floor(n / 65536) .. "." .. (math.floor(n / 256) % 256) .. "." .. (n % 256)
  return wrk.format("GET", path, {
    ["X-Forwarded-Proto"] = "https", ["X-Forwarded-Host"] = "app.example.com",
    ["X-Forwarded-Uri"] = "/wiki/page?x=1", ["X-Forwarded-Method"] = "GET",
    ["X-Forwarded-For"] = ip, [line[1]] = line[2],
  })
end
"""

_SCALE = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _parse_wrk(out: str) -> dict[str, float]:
    def percentile(name: str) -> float:
        found = re.search(rf"^\s+{name}%\s+([\d.]+)(us|ms|s)\b", out, re.MULTILINE)
        return float(found.group(1)) * _SCALE[found.group(2)] if found else float("nan")

    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "rps": float(rps.group(1)) if rps else float("nan"),
        "requests": float(total.group(1)) if total else float("nan"),
        "p50_ms": percentile("50"),
        "p99_ms": percentile("99"),
        "socket_errors": float(sum(int(g) for g in errors.groups())) if errors else 0.0,
    }


#: Client addresses the rotating runs have used so far: the next run's first (ROTATE_HEADERS_LUA).
_ADDRESSES_USED = [0]


def _wrk_lines_args(
    url: str, lines: Path, script: Path, duration: float, connections: int
) -> tuple[list[str], dict[str, str]]:
    split = url.split("/", 3)
    env = {
        **os.environ,
        "TOKENWARD_BENCH_LINES": str(lines),
        "TOKENWARD_BENCH_PATH": "/" + split[3],
        "TOKENWARD_BENCH_FIRST_ADDRESS": str(_ADDRESSES_USED[0]),
    }
    args = ["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{duration:g}s", "--latency", "--timeout", "10s"]
    return [*args, "-s", str(script), "/".join(split[:3])], env


def wrk_lines(url: str, lines: Path, script: Path, duration: float, connections: int = 32) -> dict[str, float]:
    """One wrk run of ``duration`` seconds rotating over the headers in ``lines``."""
    args, env = _wrk_lines_args(url, lines, script, duration, connections)
    out = subprocess.run(args, capture_output=True, text=True, timeout=duration + 60, check=True, env=env).stdout
    return _addresses_used(_parse_wrk(out))


def _addresses_used(result: dict[str, float]) -> dict[str, float]:
    """Advance the first address of the next run past this run's requests (wrk counts what it sent and answered;
    32 connections may have had one more in flight each)."""
    sent = result["requests"]
    _ADDRESSES_USED[0] += (int(sent) if sent == sent else 10_000_000) + 1024
    return result


class Scrape:
    """The figures of one tokenward server's ``/metrics`` this bench reads (a counter snapshot)."""

    def __init__(self, base_url: str) -> None:
        text = httpx.get(base_url + "/metrics", timeout=10).text
        found = re.search(r"^tokenward_sql_statements_total (\S+)$", text, re.MULTILINE)
        self.sql = float(found.group(1)) if found else float("nan")
        self.verify: dict[str, float] = {}  # status -> /verify answers
        for status, count in re.findall(
            r'^tokenward_http_requests_total\{method="GET",route="/verify",status="(\d+)"\} (\S+)$', text, re.MULTILINE
        ):
            self.verify[status] = float(count)
        self.at = time.monotonic()

    @property
    def answered(self) -> float:
        return sum(self.verify.values())

    def since(self, before: Scrape) -> tuple[float, dict[str, float]]:
        """SQL statements and /verify answers by status between ``before`` and this scrape."""
        statuses = {s: n - before.verify.get(s, 0.0) for s, n in self.verify.items()}
        return self.sql - before.sql, {s: n for s, n in sorted(statuses.items()) if n}


def cpu_seconds(pid: int, tid: int | None = None) -> float:
    """User and system CPU ``pid`` has used so far. Per request, it is what a case costs the server's core whatever
    else the machine runs meanwhile (on a virtual machine the host's other guests move req/s by tens of percent from
    one round to the next; the time they take is not counted here)."""
    stat = Path(f"/proc/{pid}/stat" if tid is None else f"/proc/{pid}/task/{tid}/stat")
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def system_seconds(pid: int) -> float:
    """The kernel's part of :func:`cpu_seconds` (the server's system calls: its reads, its writes and the wake-ups of
    the peers they make)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[12]) / os.sysconf("SC_CLK_TCK")


def thread_cpu_seconds(pid: int) -> dict[int, float]:
    """:func:`cpu_seconds` of each of ``pid``'s threads (by thread id; the main thread's id is ``pid``)."""
    seconds: dict[int, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):  # a thread that ended meanwhile
            seconds[int(task.name)] = cpu_seconds(pid, int(task.name))
    return seconds


def vm_rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    found = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    return int(found.group(1)) / 1024 if found else float("nan")


def warm_up(base_url: str, url: str, lines: Path, script: Path, count: int, limit: float = 600) -> dict[str, float]:
    """Send every line once (wrk rotating until the server has answered ``count`` /verify requests), timed."""
    before = Scrape(base_url)
    args, env = _wrk_lines_args(url, lines, script, limit, 32)
    started = time.monotonic()
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        while time.monotonic() - started < limit and proc.poll() is None:
            time.sleep(0.2)
            if Scrape(base_url).answered - before.answered >= count:
                break
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # wrk prints its summary and exits
        out, _ = proc.communicate(timeout=30)
    elapsed = time.monotonic() - started
    after = Scrape(base_url)
    sql, statuses = after.since(before)
    result = _addresses_used(_parse_wrk(out))
    return {**result, "seconds": elapsed, "sql": sql, "non200": sum(n for s, n in statuses.items() if s != "200")}


async def _fill(data: Path, database_url: str | None, tokens: int, sessions: int) -> tuple[list[str], list[str]]:
    """``tokens`` app tokens (one owner each) inserted in bulk, ``sessions`` browser sessions issued by the runtime's
    SessionService; returns the Authorization lines and the Cookie lines."""
    import asyncio
    import dataclasses
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import insert

    from tokenward.apptokens import format as token_format
    from tokenward.identity.encoding import b64u_encode
    from tokenward.runtime import open_runtime
    from tokenward.settings import Settings
    from tokenward.storage.apptokens import AppTokenRow

    runtime = await open_runtime(Settings.load(data_dir=data, database_url=database_url), listen=False, eager=False)
    try:
        key = DataDir(data).ensure_apptoken_key()
        key_id = token_format.key_id(key)
        now = datetime.now(UTC)
        auths: list[str] = []
        batch: list[dict[str, object]] = []
        for i in range(tokens):
            token, parsed = token_format.generate()
            owner = f"u{i}@example.com"
            batch.append(
                {
                    "id": parsed.id,
                    "owner": owner,
                    "label": "bench",
                    "scopes": [],
                    "secret_hash": token_format.hash_secret(key, parsed.id, parsed.secret),
                    "key_id": key_id,
                    "created_at": now,
                    "expires_at": now + timedelta(days=2),
                    "created_by": "bench",
                }
            )
            auths.append("Authorization: " + basic(owner, token))
            if len(batch) == 5000 or i == tokens - 1:
                async with runtime.database.engine.begin() as conn:
                    await conn.execute(insert(AppTokenRow), batch)
                batch = []
        # Without the audit event per session: what /verify reads is the session row and the sealed identifier.
        service = dataclasses.replace(runtime.sessions, audit=None)

        async def issue(i: int) -> str:
            issued = await service.issue(
                kind="user",
                subject=f"s{i}@example.com",
                client_id="bench",
                app_hash="",
                scopes=(),
                session_key=b64u_encode(secrets.token_bytes(32)),
                now=time.time(),
            )
            return f"Cookie: {SESSION_COOKIE}={issued.source_identifier}"

        # SQLite takes one writer at a time; a server database takes a few sessions at once.
        step = 1 if runtime.database.dialect == "sqlite" else 8
        cookies: list[str] = []
        for first in range(0, sessions, step):
            cookies += await asyncio.gather(*(issue(i) for i in range(first, min(sessions, first + step))))
    finally:
        await runtime.close()
    return auths, cookies


def _invalid_auths(count: int) -> list[str]:
    """Unknown app tokens (well-formed, right checksum, random ids) for unknown users, one in ten garbage."""
    from tokenward.apptokens import format as token_format

    lines = []
    for i in range(count):
        if i % 10 == 9:
            token = secrets.token_urlsafe(30) if i % 20 == 9 else f"twa_{secrets.token_urlsafe(24)}"
        else:
            token = token_format.generate()[0]
        lines.append("Authorization: " + basic(f"nobody{i}@example.com", token))
    return lines


async def rotating_in_process(tokens: int, sessions: int, requests: int) -> None:
    """The --rotating cases without a socket: thread CPU µs per request through the ASGI app, and the garbage
    collections each measured batch ran (generation 2 with their durations: the p99 tails on the wire)."""
    import asyncio
    import gc

    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    from tokenward.settings import Settings
    from tokenward.web.app import create_app

    async def ok(request: object) -> Response:
        return Response(status_code=200)

    collections: list[tuple[int, float]] = []
    started = [0.0]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            collections.append((info["generation"], time.perf_counter() - started[0]))

    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        env, params, _, _ = setup(tmp, {"TOKENWARD_TRUSTED_PROXIES": "127.0.0.1/32"})
        os.environ.update({k: v for k, v in env.items() if k.startswith("TOKENWARD_")})
        auths, cookies = await _fill(Path(env["TOKENWARD_DATA_DIR"]), None, tokens, sessions)
        # Invalid credentials never repeat (as on the wire, where a run does not go round the list): a user that
        # failed before would meet the per-account delay (tokenward.apptokens.AppTokenConfig.account_failure_delay).
        invalid = _invalid_auths(len(auths) + 3 * requests // 2)
        mixed = [line for i, bad in enumerate(invalid) for line in (auths[i % len(auths)], bad)]
        app = create_app(Settings.load())
        bare = Starlette(routes=[Route("/verify", ok)])
        statuses: dict[int, int] = {}

        async def receive() -> dict[str, object]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, object]) -> None:
            if message["type"] == "http.response.start":
                status = int(message["status"])  # type: ignore[call-overload]
                statuses[status] = statuses.get(status, 0) + 1

        forwarded = [(k.lower().encode(), v.encode()) for k, v in FORWARDED.items()]
        counter = itertools.count()

        def scope(query: bytes, header: tuple[bytes, bytes]) -> dict[str, object]:
            i = next(counter)  # every request from its own address, as on the wire
            address = f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}".encode()
            return _get_scope("/verify", query, [*forwarded, (b"x-forwarded-for", address), header])

        def header(line: str) -> tuple[bytes, bytes]:
            name, _, value = line.partition(": ")
            return name.lower().encode(), value.encode()

        cases: dict[str, tuple[Any, bytes, list[tuple[bytes, bytes]]]] = {
            "baseline": (bare, b"", [header(a) for a in auths]),
            "app-tokens": (app, f"config_token={params['app-token']}".encode(), [header(a) for a in auths]),
            "sessions": (app, f"config_token={params['session']}".encode(), [header(c) for c in cookies]),
            "mixed": (app, f"config_token={params['app-token']}".encode(), [header(m) for m in mixed]),
        }

        async def run(target: Any, query: bytes, headers: list[tuple[bytes, bytes]], count: int) -> None:
            # Each case goes on through its list where its last run stopped.
            first = position.get(id(headers), 0)
            for i in range(first, first + count):
                await target(scope(query, headers[i % len(headers)]), receive, send)
                if i % 64 == 0:
                    await asyncio.sleep(0)  # let the background tasks (feed polls, flushes) run, as a server would
            position[id(headers)] = first + count

        position: dict[int, int] = {}

        gc.callbacks.append(on_gc)
        stack = contextlib.AsyncExitStack()
        await stack.enter_async_context(_lifespan(app))
        print(f"in process: {tokens:,} app tokens, {sessions:,} sessions; every credential once, then 3 batches of")
        print(f"{requests:,} requests per case; thread CPU per request (best batch); collections during the batches")
        print("| case | µs/request | statuses | gen-0/1/2 collections | longest gen-2 ms |")
        print("|---|---:|---|---|---:|")
        try:
            for case, (target, query, headers) in cases.items():
                await run(target, query, headers, len(headers) if case != "mixed" else 2 * len(auths))
                statuses.clear()
                collections.clear()
                best = float("inf")
                for _ in range(3):
                    cpu = time.thread_time()
                    await run(target, query, headers, requests)
                    best = min(best, (time.thread_time() - cpu) / requests * 1e6)
                counts = [sum(1 for g, _ in collections if g == n) for n in range(3)]
                longest = max((d for g, d in collections if g == 2), default=0.0)
                mix = ", ".join(f"{k}: {v:,}" for k, v in sorted(statuses.items()))
                print(f"| {case} | {best:.1f} | {mix} | {'/'.join(map(str, counts))} | {longest * 1000:.1f} |")
        finally:
            gc.callbacks.remove(on_gc)
            await stack.aclose()


def rotating(
    database: str,
    duration: int,
    rounds: int,
    tokens: int,
    sessions: int,
    warm_limit: float,
    server_env: dict[str, str] | None = None,
) -> None:
    """The issue-13 cases: many distinct app tokens, many sessions, half invalid traffic; bare Starlette beside.
    ``server_env``: settings for the tokenward server (``--server-env``), to see what one of them costs."""
    import asyncio
    from contextlib import ExitStack

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.storage.servers import fresh_database_url

    for tool in ("wrk", "taskset"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is missing: apt-get install -y wrk util-linux")
    with tempfile.TemporaryDirectory() as tmpdir, ExitStack() as stack:
        tmp = Path(tmpdir)
        database_url = None
        extra = {"TOKENWARD_TRUSTED_PROXIES": "127.0.0.1/32"}  # X-Forwarded-For: one client address per request
        extra.update(server_env or {})
        if database != "sqlite":
            database_url = stack.enter_context(fresh_database_url(database, tmp))
            extra["TOKENWARD_DATABASE_URL"] = database_url
        env, params, hot_token, _ = setup(tmp, extra)
        data = Path(env["TOKENWARD_DATA_DIR"])
        port, base_port = free_port(), free_port()
        base_url = f"http://127.0.0.1:{port}"
        urls = {
            "baseline": f"http://127.0.0.1:{base_port}/verify",
            "app-tokens": f"{base_url}/verify?config_token={params['app-token']}",
            "sessions": f"{base_url}/verify?config_token={params['session']}",
            "mixed": f"{base_url}/verify?config_token={params['app-token']}",
        }
        serve = [sys.executable, "-m", "tokenward", "serve", "--port", str(port)]
        # RSS of the server before any bulk credential exists (its code paths warmed by a few requests).
        proc = start(serve, env)
        try:
            wait_up(f"{base_url}/healthz", proc, deadline=120)
            for _ in range(20):
                httpx.get(
                    urls["app-tokens"], headers={**FORWARDED, "Authorization": basic("alice@example.com", hot_token)}
                )
            rss_empty = vm_rss_mb(proc.pid)
        finally:
            stop(proc)
        started = time.monotonic()
        auths, cookies = asyncio.run(_fill(data, database_url, tokens, sessions))
        fill_seconds = time.monotonic() - started
        invalid = _invalid_auths(len(auths) // 2)
        mixed = [line for pair in zip(auths, invalid, strict=False) for line in pair]
        files = {"app-tokens": tmp / "auths.txt", "sessions": tmp / "cookies.txt", "mixed": tmp / "mixed.txt"}
        files["app-tokens"].write_text("\n".join(auths) + "\n")
        files["sessions"].write_text("\n".join(cookies) + "\n")
        files["mixed"].write_text("\n".join(mixed) + "\n")
        files["baseline"] = files["app-tokens"]
        lua = tmp / "rotate.lua"
        lua.write_text(ROTATE_HEADERS_LUA)
        script = tmp / "baseline.py"
        script.write_text(BASELINE_APP)
        procs = [start([sys.executable, str(script), str(base_port)], env), start(serve, env)]
        server = procs[1]
        runs: dict[str, list[dict[str, float]]] = {case: [] for case in urls}
        try:
            wait_up(urls["baseline"], procs[0])
            started = time.monotonic()
            wait_up(f"{base_url}/healthz", server, deadline=300)
            start_seconds = time.monotonic() - started
            rss_start = vm_rss_mb(server.pid)
            warm = {
                "app-tokens": warm_up(base_url, urls["app-tokens"], files["app-tokens"], lua, len(auths), warm_limit)
            }
            rss_tokens = vm_rss_mb(server.pid)
            warm["sessions"] = warm_up(base_url, urls["sessions"], files["sessions"], lua, len(cookies), warm_limit)
            rss_sessions = vm_rss_mb(server.pid)
            wrk_lines(urls["baseline"], files["baseline"], lua, 2)  # the baseline's warm-up
            for _ in range(rounds):
                for case, url in urls.items():
                    before = Scrape(base_url) if case != "baseline" else None
                    pid = procs[0].pid if case == "baseline" else server.pid
                    cpu, system, threads = cpu_seconds(pid), system_seconds(pid), thread_cpu_seconds(pid)
                    result = wrk_lines(url, files[case], lua, duration)
                    result["cpu_us"] = (cpu_seconds(pid) - cpu) / result["requests"] * 1e6
                    result["sys_us"] = (system_seconds(pid) - system) / result["requests"] * 1e6
                    after_threads = thread_cpu_seconds(pid)
                    others = sum(t - threads.get(tid, 0.0) for tid, t in after_threads.items() if tid != pid)
                    result["others_us"] = others / result["requests"] * 1e6
                    if before is not None:
                        after = Scrape(base_url)
                        sql, statuses = after.since(before)
                        result["sql_per_s"] = sql / (after.at - before.at)
                        result["statuses"] = statuses  # type: ignore[assignment]
                    runs[case].append(result)
            rss_end = vm_rss_mb(server.pid)
        finally:
            for proc in procs:
                stop(proc)
    report(database, duration, rounds, tokens, sessions, runs, warm, fill_seconds, start_seconds)
    print()
    print("| server RSS | MB |")
    print("|---|---:|")
    print(f"| started on the same data before the bulk credentials existed (20 requests) | {rss_empty:.1f} |")
    print(f"| started with {tokens:,} app tokens and {sessions:,} sessions in the database | {rss_start:.1f} |")
    print(f"| after every app token was used once | {rss_tokens:.1f} |")
    print(f"| after every session was used once | {rss_sessions:.1f} |")
    print(f"| after the measured rounds | {rss_end:.1f} |")
    warmed = int(min(warm["app-tokens"]["requests"], tokens))  # rotating: the first `tokens` requests are distinct
    per = (rss_tokens - rss_empty) * 100_000 / max(1, warmed)
    note = "" if warmed >= 100_000 else f"; scaled from {warmed:,} tokens, fixed costs inflate it"
    for case, count in (("app-tokens", tokens), ("sessions", sessions)):
        if warm[case]["requests"] < count:
            print(
                f"NOTE: the {case} warm-up stopped at its {warm_limit:.0f} s limit: {warm[case]['requests']:,.0f} "
                f"of {count:,} credentials were used before the measured rounds"
            )
    print(
        f"state per 100,000 cached app tokens: {per:.1f} MB "
        f"(after the token warm-up minus before any bulk credential{note})"
    )


def report(
    database: str,
    duration: int,
    rounds: int,
    tokens: int,
    sessions: int,
    runs: dict[str, list[dict[str, Any]]],
    warm: dict[str, dict[str, float]],
    fill_seconds: float,
    start_seconds: float,
) -> None:
    print(
        f"{database}: {tokens:,} app tokens (bulk insert) and {sessions:,} sessions made in {fill_seconds:.1f} s; "
        f"serve up in {start_seconds:.1f} s; wrk -t1 -c32 -d{duration}s x {rounds} rounds, server on core 0, "
        "wrk on core 1, one X-Forwarded-For address per request"
    )
    print()
    print("warm-up (every credential once, before the measured rounds):")
    print("| case | requests | seconds | req/s | p50 ms | p99 ms | SQL statements | non-200 |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for case, w in warm.items():
        print(
            f"| {case} | {w['requests']:,.0f} | {w['seconds']:.1f} | {w['rps']:,.0f} | {w['p50_ms']:.2f} | "
            f"{w['p99_ms']:.2f} | {w['sql']:,.0f} | {w['non200']:,.0f} |"
        )
    print()
    base = statistics.median(r["rps"] for r in runs["baseline"])
    base_cpu = statistics.median(r["cpu_us"] for r in runs["baseline"])
    print("measured rounds (medians over rounds; ratio to the bare Starlette app's median in the same run; server")
    print("CPU (user + system) per request, and the bare app's over the case's: the ratio on a core of its own):")
    print(
        "| case | req/s | x bare | p50 ms | p99 ms | worst p99 ms | SQL stmts/s | CPU µs/req | of it system "
        "| off-loop µs/req | x bare by CPU | /verify statuses | req/s per round |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|")
    for case, each in runs.items():
        rps = statistics.median(r["rps"] for r in each)
        statuses: dict[str, float] = {}
        for r in each:
            for status, n in r.get("statuses", {}).items():
                statuses[status] = statuses.get(status, 0) + n
        total = sum(statuses.values()) or 1
        per_round = ", ".join(f"{r['rps']:,.0f}" for r in each)
        mix = ", ".join(f"{s}: {n / total:.1%}" for s, n in sorted(statuses.items())) or "-"
        sql = f"{statistics.median(r['sql_per_s'] for r in each):.1f}" if "sql_per_s" in each[0] else "-"
        cpu = statistics.median(r["cpu_us"] for r in each)
        print(
            f"| {case} | {rps:,.0f} | {rps / base:.2f} | {statistics.median(r['p50_ms'] for r in each):.2f} | "
            f"{statistics.median(r['p99_ms'] for r in each):.2f} | {max(r['p99_ms'] for r in each):.2f} | {sql} | "
            f"{cpu:.0f} | {statistics.median(r['sys_us'] for r in each):.0f} | "
            f"{statistics.median(r['others_us'] for r in each):.0f} | {base_cpu / cpu:.2f} | {mix} | "
            f"{per_round} |"
        )
    print()
    print("targets (issue 13): >= 0.5 x bare and p99 <= 10 ms for app-tokens, sessions and mixed; mixed <= 10 SQL/s")
    line = _refusal_line(runs)
    if line:
        print(line)


def _refusal_line(runs: dict[str, list[dict[str, Any]]]) -> str:
    """What a refusal costs beside an acceptance, from the cases' CPU per request: the mixed case alternates the
    app-tokens case's credentials with refused ones, so a refusal takes 2 x mixed - app-tokens. Their ratio moves
    far less from machine to machine than req/s does; 0.5 x bare for mixed needs (acceptance + refusal) / 2 to stay
    within twice the bare app's CPU."""
    if not all(case in runs for case in ("baseline", "app-tokens", "mixed")):
        return ""
    bare, accept, mixed = (
        statistics.median(r["cpu_us"] for r in runs[case]) for case in ("baseline", "app-tokens", "mixed")
    )
    refusal = 2 * mixed - accept
    return (
        f"CPU: a refusal takes about {refusal:.0f} µs against {accept:.0f} for an acceptance "
        f"({refusal / accept:.1f} x); mixed at 0.5 x bare needs their mean within {2 * bare:.0f} µs (it is {mixed:.0f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run (1-60)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; each runs every case once, interleaved (1-10)")
    parser.add_argument("--in-process", action="store_true", help="time ASGI calls without a socket instead")
    parser.add_argument("--list-api", action="store_true", help="GET /api/app-tokens at 200 connections instead")
    parser.add_argument(
        "--rotating", action="store_true", help="many distinct app tokens and sessions, half-invalid traffic instead"
    )
    parser.add_argument("--wrong-percent", type=float, default=10, help="--list-api: wrong tokens per 100 users")
    parser.add_argument(
        "--database", choices=("sqlite", "postgresql"), default="sqlite", help="for --rotating and --list-api"
    )
    parser.add_argument("--tokens", type=int, default=100_000, help="distinct app tokens for --rotating (1k-1M)")
    parser.add_argument("--sessions", type=int, default=10_000, help="distinct sessions for --rotating (100-100k)")
    parser.add_argument(
        "--warm-limit", type=float, default=600, help="seconds each --rotating warm-up may take at most (10-1800)"
    )
    parser.add_argument(
        "--loop", choices=("asyncio", "uvloop"), default="asyncio", help="the event loop of both servers (wire cases)"
    )
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="TOKENWARD_NAME=VALUE",
        help="--rotating: a setting for the tokenward server only, to measure what it costs (repeatable), "
        "e.g. TOKENWARD_REGULATION_BAN_TIME_SECONDS=0",
    )
    opts = parser.parse_args()
    server_env: dict[str, str] = {}
    for item in opts.server_env:
        name, equals, value = item.partition("=")
        if not name.startswith("TOKENWARD_") or not equals:
            parser.error(f"--server-env {item!r}: give TOKENWARD_NAME=VALUE (docs/configuration.md lists the settings)")
        server_env[name] = value
    if server_env and (not opts.rotating or opts.in_process):
        parser.error("--server-env applies to --rotating runs on the wire only")
    EVENT_LOOP[0] = opts.loop
    if opts.in_process and opts.rotating:
        import asyncio

        tokens = max(1_000, min(1_000_000, opts.tokens))
        sessions = max(100, min(100_000, opts.sessions))
        asyncio.run(rotating_in_process(tokens, sessions, max(tokens, 100_000)))
        return
    if opts.in_process:
        import asyncio

        with tempfile.TemporaryDirectory() as tmpdir:
            asyncio.run(in_process(Path(tmpdir), 20_000))
        return
    duration = max(1, min(60, opts.duration))
    rounds = max(1, min(10, opts.rounds))
    if opts.list_api:
        list_api(duration, rounds, opts.database, wrong_share=max(0.0, min(1.0, opts.wrong_percent / 100)))
        return
    if opts.rotating:
        tokens = max(1_000, min(1_000_000, opts.tokens))
        sessions = max(100, min(100_000, opts.sessions))
        if server_env:
            from tokenward.storage.urls import redact

            # A URL may carry a password (a database's): printed without it.
            shown = {k: redact(v) if "://" in v else v for k, v in server_env.items()}
            print("tokenward server settings: " + ", ".join(f"{k}={v}" for k, v in shown.items()))
        warm_limit = max(10.0, min(1800.0, opts.warm_limit))
        rotating(opts.database, duration, rounds, tokens, sessions, warm_limit, server_env)
        return
    for tool in ("wrk", "taskset"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is missing: apt-get install -y wrk util-linux")
    runs: dict[str, list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        env, tokens, app_token, password = setup(tmp)
        del tokens["session"]  # the rotating cases' (--rotating)
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
