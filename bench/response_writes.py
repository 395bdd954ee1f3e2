"""One write per response: a bare ASGI app on uvicorn's httptools protocol, stock and coalescing, with wrk.

    .venv/bin/python bench/response_writes.py                 # 3 rounds x 4 s per case
    .venv/bin/python bench/response_writes.py --rounds 1 --duration 3

uvicorn writes a response's headers and its body in two ``send()`` calls. ``tokenward serve`` runs
:class:`tokenward.web.httpserver.CoalescingHttpToolsProtocol`, which sends both in one. Cases, each a one-file
ASGI app pinned to core 0 with ``wrk -t1 -c32`` on core 1 (interleaved round by round):

- **empty / stock**: 200 with no body (one write either way: the bare app of ``bench/verify.py``);
- **body / stock**: 401 with a 73-byte JSON body, as every refused ``/verify`` (two writes);
- **body / coalescing**: the same through tokenward's protocol (one write).

Prints req/s (median of the rounds), the ratio to the empty case of the same run, and the server's CPU (user and
system) per request, which other work on the machine moves less than throughput. Needs ``wrk`` and ``taskset``.
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

if sys.argv[3] == "coalescing":
    from tokenward.web.httpserver import CoalescingHttpToolsProtocol as http
else:
    http = "httptools"
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False,
            server_header=False, proxy_headers=False, loop="asyncio", http=http)
"""

CASES = [("empty", "stock"), ("body", "stock"), ("body", "coalescing")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, choices=range(1, 11), metavar="1-10")
    parser.add_argument("--duration", type=int, default=4, choices=range(1, 61), metavar="1-60")
    args = parser.parse_args()
    for tool in ("wrk", "taskset"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is missing: apt-get install -y wrk util-linux")
    results: dict[tuple[str, str], list[float]] = {case: [] for case in CASES}
    cpu: dict[tuple[str, str], list[float]] = {case: [] for case in CASES}
    with tempfile.TemporaryDirectory() as tmpdir:
        script = Path(tmpdir) / "app.py"
        script.write_text(APP)
        for _ in range(args.rounds):
            for body, protocol in CASES:
                port = free_port()
                proc = start([sys.executable, str(script), str(port), body, protocol], dict(os.environ))
                try:
                    wait_up(f"http://127.0.0.1:{port}/", proc)
                    before = cpu_seconds(proc.pid)
                    out = subprocess.run(
                        [
                            "taskset",
                            "-c",
                            "1",
                            "wrk",
                            "-t1",
                            "-c32",
                            f"-d{args.duration}s",
                            f"http://127.0.0.1:{port}/",
                        ],
                        capture_output=True,
                        text=True,
                        check=True,
                    ).stdout
                    used = cpu_seconds(proc.pid) - before
                    figures = _parse_wrk(out)
                    results[(body, protocol)].append(figures["rps"])
                    cpu[(body, protocol)].append(used / figures["requests"] * 1e6)
                finally:
                    stop(proc)
    base = statistics.median(results[CASES[0]])
    print(f"wrk -t1 -c32 -d{args.duration}s x {args.rounds} rounds, app on core 0, wrk on core 1")
    print("| response | protocol | req/s (median) | x empty | server CPU µs/request (median) | req/s per round |")
    print("|---|---|---:|---:|---:|---|")
    for (body, protocol), each in results.items():
        rps = statistics.median(each)
        rounds = ", ".join(f"{r:,.0f}" for r in each)
        per = statistics.median(cpu[(body, protocol)])
        print(f"| {body} | {protocol} | {rps:,.0f} | {rps / base:.2f} | {per:.1f} | {rounds} |")


if __name__ == "__main__":
    main()
