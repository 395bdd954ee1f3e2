"""Server CPU per request: a bare ASGI app on uvicorn's httptools protocol, stock and tokenward's, with wrk.

    .venv/bin/python bench/response_writes.py                 # 3 rounds x 4 s per case
    .venv/bin/python bench/response_writes.py --rounds 5 --duration 5
    .venv/bin/python bench/response_writes.py --protocol mine=scratch_module:Protocol   # one more column

``tokenward serve`` runs :class:`tokenward.web.httpserver.CoalescingHttpToolsProtocol`: uvicorn's httptools
protocol with less work per request (one write per response, one keep-alive timer per connection, no done callback
per task). Each case is a one-file ASGI app pinned to core 0 with ``wrk -t1 -c32`` on core 1, the cases interleaved
round by round:

- **empty**: 200 with no body, as every accepted ``/verify`` (the bare app of ``bench/verify.py``);
- **body**: 401 with a 73-byte JSON body, as every refused ``/verify`` and every API answer;

each on stock uvicorn (``stock``) and on tokenward's protocol (``tokenward``). Prints req/s (median of the rounds)
and the server's CPU (user and system) per request, which other work on the machine moves less than throughput,
with each protocol's ratio to stock for the same response. Needs ``wrk`` and ``taskset``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from verify import _parse_wrk, cpu_seconds, free_port, start, stop, wait_up

APP = """
import sys, uvicorn
BODY = b'{"error": "apptoken_invalid", "detail": "invalid user name or app token"}' if sys.argv[2] == "body" else b""

async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]
    await send({"type": "http.response.start", "status": 401 if BODY else 200, "headers": headers})
    await send({"type": "http.response.body", "body": BODY})

if sys.argv[3] == "httptools":
    http = "httptools"
else:
    import importlib
    module, _, name = sys.argv[3].partition(":")
    http = getattr(importlib.import_module(module), name)
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False,
            server_header=False, proxy_headers=False, loop="asyncio", http=http)
"""

PROTOCOLS = {"stock": "httptools", "tokenward": "tokenward.web.httpserver:CoalescingHttpToolsProtocol"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, choices=range(1, 11), metavar="1-10")
    parser.add_argument("--duration", type=int, default=4, choices=range(1, 61), metavar="1-60")
    parser.add_argument(
        "--protocol", action="append", default=[], metavar="LABEL=MODULE:CLASS", help="another protocol to measure"
    )
    args = parser.parse_args()
    for tool in ("wrk", "taskset"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is missing: apt-get install -y wrk util-linux")
    protocols = dict(PROTOCOLS)
    for extra in args.protocol:
        label, _, target = extra.partition("=")
        protocols[label] = target
    cases = [(body, label) for body in ("empty", "body") for label in protocols]
    results: dict[tuple[str, str], list[float]] = {case: [] for case in cases}
    cpu: dict[tuple[str, str], list[float]] = {case: [] for case in cases}
    with tempfile.TemporaryDirectory() as tmpdir:
        script = Path(tmpdir) / "app.py"
        script.write_text(APP)
        for _ in range(args.rounds):
            for body, label in cases:
                port = free_port()
                proc = start([sys.executable, str(script), str(port), body, protocols[label]], dict(os.environ))
                try:
                    wait_up(f"http://127.0.0.1:{port}/", proc)
                    before = cpu_seconds(proc.pid)
                    wrk = [
                        "taskset",
                        "-c",
                        "1",
                        "wrk",
                        "-t1",
                        "-c32",
                        f"-d{args.duration}s",
                        f"http://127.0.0.1:{port}/",
                    ]
                    out = subprocess.run(wrk, capture_output=True, text=True, check=True).stdout
                    used = cpu_seconds(proc.pid) - before
                    figures = _parse_wrk(out)
                    results[(body, label)].append(figures["rps"])
                    cpu[(body, label)].append(used / figures["requests"] * 1e6)
                finally:
                    stop(proc)
    print(f"wrk -t1 -c32 -d{args.duration}s x {args.rounds} rounds, app on core 0, wrk on core 1")
    print("| response | protocol | req/s (median) | server CPU µs/request (median) | CPU x stock | µs per round |")
    print("|---|---|---:|---:|---:|---|")
    for body, label in cases:
        rps = statistics.median(results[(body, label)])
        per = statistics.median(cpu[(body, label)])
        stock = statistics.median(cpu[(body, "stock")])
        rounds = ", ".join(f"{c:.1f}" for c in cpu[(body, label)])
        print(f"| {body} | {label} | {rps:,.0f} | {per:.1f} | {per / stock:.2f} | {rounds} |")


if __name__ == "__main__":
    main()
