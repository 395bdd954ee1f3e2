"""Instructions per ``/verify`` request, counted by valgrind's callgrind: the same figure on a busy or a quiet machine.

    .venv/bin/python bench/instructions.py                   # 300 requests per case, about 2 minutes
    taskset -c 0 .venv/bin/python bench/instructions.py --native 6 --requests 10000   # the same cases in time
    PYTHONPATH=/path/to/other/checkout/src .venv/bin/python bench/instructions.py   # the same for another tree

This machine's req/s and CPU µs move by a fifth between runs of the same code (other guests), so a change of a few
per cent cannot be seen on the wire. This counts the instructions instead. It runs requests through the server's
Python side without sockets: uvicorn's protocol objects (tokenward's :mod:`tokenward.web.httpserver` for tokenward,
stock ``HttpToolsProtocol`` for the baseline) are fed the bytes of a request on 32 connections. Each response goes
to a transport that keeps it. Each case is measured inside one ``functools.reduce`` call, which callgrind toggles
collection on, after half a second of the loop running freely (what was due runs then) and a full collection (so
that none is left over from what ran before). The loop's clock is held a day back meanwhile, so no feed poll or
flush lands in one case and not another, and the unknown-id lookup trickle never reads SQL. Cases, as in
``bench/verify.py --rotating``, each request from its own X-Forwarded-For address:

- **bare**: a bare Starlette app answering 200 on stock uvicorn (the baseline, in the same process);
- **floor**: a raw ASGI app answering 200 through tokenward's own protocol and its whole-response call: the least
  any answer of this server costs, so the rest of each case is what the app does above it;
- **accept**: rotating over distinct app tokens (pointer token, ``app_token`` plugin, SQLite);
- **refuse**: well-formed unknown app tokens (one in ten garbage), as the mixed case's invalid half;
- **missing**: a bearer credential that is not an app token (a 401 decided before any lookup);
- **mixed**: app tokens alternating with unknown ones (fresh ones, not the refuse case's), as issue 13's mixed case.

The kernel's share (about 12 % of the server's CPU on the wire, ``perf``) is not counted. Instructions are not
time: a refusal is about 1.2 x an acceptance here against 1.3-2 x in CPU time on the wire. So this is for comparing two
trees or two commits, not for the issue-13 ratios, which stay with ``bench/verify.py --rotating``.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import glob
import itertools
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

CASES = ("bare", "floor", "accept", "refuse", "missing", "mixed")
CONNECTIONS = 32


class _Transport:
    """What a protocol writes to: it counts the responses' status codes."""

    def __init__(self, statuses: dict[bytes, int]) -> None:
        self.statuses = statuses
        self.closing = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 40000)}.get(name, default)

    def write(self, data: bytes) -> None:
        if data.startswith(b"HTTP/1.1 "):
            self.statuses[data[9:12]] = self.statuses.get(data[9:12], 0) + 1

    def is_closing(self) -> bool:
        return self.closing

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def close(self) -> None:
        self.closing = True


def measure(requests: int, repeat: int = 1) -> None:
    """The measured process (under callgrind, or not with ``--native``): each case warmed, then ``requests`` of it
    inside one reduce(); the cases ``repeat`` times in turn."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import verify as bench  # bench/verify.py: its data dir, bulk tokens, invalid tokens, forward-auth headers
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route
    from uvicorn.config import Config
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    from uvicorn.server import ServerState

    from tokenward.apptokens.service import AppTokenService
    from tokenward.settings import Settings
    from tokenward.web.app import create_app
    from tokenward.web.httpserver import RESPOND, CoalescingHttpToolsProtocol

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    tmp = Path(tempfile.mkdtemp(prefix="tokenward-instructions-"))
    env, params, _, _ = bench.setup(
        tmp, {"TOKENWARD_TRUSTED_PROXIES": "127.0.0.1/32", "TOKENWARD_CHANGES_MAX_LAG_SECONDS": "3600"}
    )
    os.environ.update({k: v for k, v in env.items() if k.startswith("TOKENWARD_")})
    auths, _ = loop.run_until_complete(bench._fill(Path(env["TOKENWARD_DATA_DIR"]), None, 400, 2))
    invalid = bench._invalid_auths(2 * requests)
    fresh = bench._invalid_auths(2 * requests)
    # The trickle's token bucket runs, but never grants a read: SQL would land in one case's count and not another's.
    may = AppTokenService._may_look_up_unknown
    AppTokenService._may_look_up_unknown = lambda self: may(self) and False  # type: ignore[method-assign]
    app = create_app(Settings.load())

    async def ok(request: Request) -> Response:
        return Response(status_code=200)

    statuses: dict[bytes, int] = {}

    def protocols(target: Any, cls: type, **options: Any) -> list[Any]:
        config = Config(
            app=target,
            http=cls,
            log_config=None,
            access_log=False,
            proxy_headers=False,
            lifespan="off",
            # A keep-alive timer armed while the clock is held a day back would fall due (and close the connection)
            # as soon as the clock is given back: wrk's connections stay open for the whole run.
            timeout_keep_alive=3 * 86_400,
            **options,
        )
        config.load()
        state = ServerState()
        out = []
        for _ in range(CONNECTIONS):
            factory: Any = config.http_protocol_class
            protocol = factory(config=config, server_state=state, app_state={}, _loop=loop)
            protocol.connection_made(_Transport(statuses))
            out.append(protocol)
        return out

    tokenward = protocols(app, CoalescingHttpToolsProtocol, server_header=False)

    async def floor(scope: Any, receive: Any, send: Any) -> None:
        await scope["extensions"][RESPOND](200, [], b"")

    query = f"/verify?config_token={params['app-token']}"
    cases = {
        "bare": (protocols(Starlette(routes=[Route("/verify", ok)]), HttpToolsProtocol), "/verify", auths),
        "floor": (protocols(floor, CoalescingHttpToolsProtocol, server_header=False), "/verify", auths),
        "accept": (tokenward, query, auths),
        "refuse": (tokenward, query, invalid),
        "missing": (tokenward, query, ["Authorization: Bearer not-an-app-token"]),
        "mixed": (tokenward, query, [line for pair in zip(itertools.cycle(auths), fresh) for line in pair]),
    }
    forwarded = "".join(f"{k}: {v}\r\n" for k, v in bench.FORWARDED.items())
    addresses = itertools.count()
    position: dict[str, int] = {}

    def build(case: str, count: int) -> list[bytes]:
        _, path, lines = cases[case]
        first = position.get(case, 0)
        position[case] = first + count
        out = []
        for i in range(first, first + count):
            n = next(addresses)
            address = f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}"
            line = lines[i % len(lines)]
            head = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{forwarded}X-Forwarded-For: {address}\r\n"
            out.append(f"{head}{line}\r\n\r\n".encode())
        return out

    def run(case: str, batch: list[bytes]) -> None:
        connections = cases[case][0]
        asyncio.events._set_running_loop(loop)
        held = loop.time() - 86_400.0  # a day back: no timer already set falls due inside a measured batch
        loop.time = lambda: held  # type: ignore[method-assign]
        try:
            for k in range(0, len(batch), CONNECTIONS):
                for protocol, request in zip(connections, batch[k : k + CONNECTIONS], strict=False):
                    protocol.data_received(request)
                while any(p.cycle is not None and not p.cycle.response_complete for p in connections):
                    loop._run_once()  # type: ignore[attr-defined]
                writes = getattr(connections[0], "writes", None)  # tokenward's: whole responses leave at turn's end
                while writes is not None and writes.pending:
                    loop._run_once()  # type: ignore[attr-defined]
        finally:
            del loop.time
            asyncio.events._set_running_loop(None)

    lifespan = bench._lifespan(app)
    loop.run_until_complete(lifespan.__aenter__())
    for case in CASES * repeat:
        run(case, build(case, requests))  # warm: every path taken once, caches filled
        batch = build(case, requests)
        loop.run_until_complete(asyncio.sleep(0.5))  # what is due (a poll, a flush, a thread's answer) runs now
        gc.collect()  # every case starts with the collector's counts at zero: no full pass left over from another
        statuses.clear()
        started = time.thread_time()
        functools.reduce(lambda _a, _b: run(case, batch), [0], None)  # callgrind counts inside this
        seconds = time.thread_time() - started
        print(f"STATUS {case} {' '.join(f'{s.decode()}:{n}' for s, n in sorted(statuses.items()))} {seconds:.3f}")
    sys.stdout.flush()
    os._exit(0)  # the runtime's threads and connections need no orderly close in a throwaway process


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=300, help="measured requests per case (default 300)")
    parser.add_argument(
        "--native",
        type=int,
        metavar="N",
        help="no valgrind: thread CPU per request, the cases N times in turn (medians; --native 6 --requests 10000)",
    )
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)  # the process under callgrind
    parser.add_argument("--repeat", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.requests < 1 or (args.native is not None and args.native < 1):
        parser.error("--requests and --native take a count of 1 or more")
    if args.measure:
        measure(args.requests, args.repeat)
        return
    if args.native:
        native(args.requests, args.native)
        return
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is missing: apt-get install -y valgrind")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        command = [
            "valgrind",
            "--tool=callgrind",
            "--collect-atstart=no",
            "--toggle-collect=functools_reduce",
            "--dump-after=functools_reduce",
            f"--callgrind-out-file={out}.%p",
            sys.executable,
            __file__,
            "--measure",
            "--requests",
            str(args.requests),
        ]
        env = {**os.environ, "PYTHONHASHSEED": "0"}  # one dict layout for every run
        started = time.monotonic()
        result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        lines = [line.split() for line in result.stdout.splitlines() if line.startswith("STATUS ")]
        if result.returncode != 0 or len(lines) != len(CASES):
            sys.stderr.write(result.stdout[-3000:] + result.stderr[-3000:])
            raise SystemExit(f"the measured process failed (exit {result.returncode})")
        # Every reduce() left a dump; the measured ones are the last ones with collection (startup's are tiny).
        dumps = sorted(glob.glob(f"{out}.*.*"), key=lambda p: int(p.rsplit(".", 1)[1]))
        totals = [_total(p) for p in dumps]
        measured = [t for t in totals if t > 1000 * args.requests][-len(CASES) :]
    print(
        f"instructions per request (callgrind; {args.requests} requests per case after as many to warm up; "
        f"{time.monotonic() - started:.0f} s under valgrind)"
    )
    print()
    print("| case | instructions / request | x bare | statuses |")
    print("|---|---:|---:|---|")
    bare = measured[0] / args.requests
    for (_, case, *rest), total in zip(lines, measured, strict=True):
        per = total / args.requests
        print(f"| {case} | {per:,.0f} | {per / bare:.2f} | {' '.join(rest[:-1])} |")
    _ratios("instructions", dict(zip(CASES, measured, strict=True)))


def native(requests: int, repeat: int) -> None:
    """The same process without valgrind: thread CPU per request (time, where the default counts instructions), to
    set beside the instruction counts: a case whose time ratio exceeds its instruction ratio runs slower per
    instruction."""
    command = [sys.executable, __file__, "--measure", "--requests", str(requests), "--repeat", str(repeat)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    seconds: dict[str, list[float]] = {}
    for line in result.stdout.splitlines():
        if line.startswith("STATUS "):
            fields = line.split()
            seconds.setdefault(fields[1], []).append(float(fields[-1]))
    if result.returncode != 0 or [len(seconds.get(case, ())) for case in CASES] != [repeat] * len(CASES):
        sys.stderr.write(result.stdout[-3000:] + result.stderr[-3000:])
        raise SystemExit(f"the measured process failed (exit {result.returncode})")
    print(f"thread CPU per request, no valgrind ({requests} requests per case, median of {repeat} turns)")
    print()
    print("| case | µs / request | x bare | turns, µs |")
    print("|---|---:|---:|---|")
    per = {case: [s / requests * 1e6 for s in seconds[case]] for case in CASES}
    bare = statistics.median(per["bare"])
    for case in CASES:
        each = per[case]
        print(
            f"| {case} | {statistics.median(each):.1f} | {statistics.median(each) / bare:.2f} | "
            f"{', '.join(f'{x:.1f}' for x in each)} |"
        )
    _ratios("time", {case: statistics.median(each) for case, each in per.items()})


def _ratios(what: str, by_case: dict[str, float]) -> None:
    accept, refuse, mixed = by_case["accept"], by_case["refuse"], by_case["mixed"]
    print()
    print(f"a refusal takes {refuse / accept:.2f} x the {what} of an acceptance")
    print(f"the mixed case takes {2 * mixed / (accept + refuse):.2f} x the mean of an acceptance and a refusal")


def _total(path: str) -> int:
    with open(path) as f:
        for line in f:
            if line.startswith("totals:"):
                return int(line.split()[1])
    return 0


if __name__ == "__main__":
    main()
