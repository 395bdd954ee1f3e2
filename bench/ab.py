"""Two tokenward trees on the wire, side by side: the same traffic, rounds alternating, medians and their ratio.

    .venv/bin/python bench/ab.py /path/to/other/checkout/src src                  # mixed traffic, 6 rounds x 5 s
    .venv/bin/python bench/ab.py src "src|TOKENWARD_REGULATION_BAN_TIME_SECONDS=0" --case refused   # one setting
    .venv/bin/python bench/ab.py A B --case accepted --rounds 8 --tokens 100000

``bench/instructions.py`` compares two trees by instructions, without sockets; this compares them where issue 13's
targets are measured. The two differ: a change can cost few instructions and much time on the wire (dropping the
unknown id's HMAC was 2.4 % of the mixed case's instructions and 7 % of its CPU, since on the wire the hash's code
is cold every time). And one run of ``bench/verify.py --rotating`` cannot show a change of a few per cent: this
machine's req/s and CPU per request move by a fifth between runs (other guests). Here both servers run at once,
each on its own data, and take turns: round i sends the same traffic to A then B, round i+1 to B then A, so a
slow minute of the host falls on both.

Each side is a tree's ``src`` directory (put first on the server's ``PYTHONPATH``), optionally followed by
``|NAME=VALUE`` settings for its server. Both get the same setup as ``bench/verify.py --rotating`` (a pointer token
to the ``app_token`` plugin on SQLite, ``--tokens`` distinct app tokens of distinct owners, one X-Forwarded-For
address per request), made by this checkout's code: the trees must share its database schema. Both are pinned to
core 0 and wrk (``-t1 -c32``) to core 1; before the rounds every token is used once on each. Cases:

- **mixed**: the app tokens alternating with as many unknown ones (issue 13's mixed case);
- **accepted**: the app tokens only;
- **refused**: the unknown ones only (well-formed, right checksum, unknown ids; one in ten garbage).

It prints each side's median req/s and CPU µs per request (the server's user + system time over its answers) with
every round's, then B over A for both. A CPU ratio below 1 and a req/s ratio above 1 mean B is cheaper.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import verify as bench  # the setup, wrk and /proc helpers of bench/verify.py

CASES = ("mixed", "accepted", "refused")


@dataclass
class Side:
    spec: str
    src: Path
    settings: dict[str, str]
    rounds: list[tuple[float, float]] = field(default_factory=list)  # (req/s, CPU µs per request)


def parse_side(spec: str) -> Side:
    src, *settings = spec.split("|")
    path = Path(src).resolve()
    if not (path / "tokenward" / "__init__.py").is_file():
        raise SystemExit(f"{src}: not a tree's src directory (no tokenward/__init__.py in it)")
    pairs = {}
    for setting in settings:
        name, equals, value = setting.partition("=")
        if not equals or not name.startswith("TOKENWARD_"):
            raise SystemExit(f"{setting!r}: give settings as TOKENWARD_NAME=VALUE after a |")
        pairs[name] = value
    return Side(spec, path, pairs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("a", help="side A: a tree's src directory, then optional |TOKENWARD_NAME=VALUE settings")
    parser.add_argument("b", help="side B, the same way")
    parser.add_argument("--case", choices=CASES, default="mixed")
    parser.add_argument("--rounds", type=int, default=6, help="rounds per side (default 6)")
    parser.add_argument("--duration", type=int, default=5, help="seconds per round (default 5)")
    parser.add_argument("--tokens", type=int, default=50_000, help="distinct app tokens per side (default 50,000)")
    args = parser.parse_args()
    if args.rounds < 1 or args.duration < 1 or args.tokens < 10:
        parser.error("--rounds and --duration take 1 or more, --tokens 10 or more")
    sides = [parse_side(args.a), parse_side(args.b)]
    with tempfile.TemporaryDirectory() as tmpdir:
        servers = []
        try:
            for n, side in enumerate(sides):
                servers.append(_start(Path(tmpdir) / str(n), side, args.tokens))
            for proc, base_url, url, files, lua in servers:
                bench.wait_up(f"{base_url}/healthz", proc, deadline=300)
                bench.warm_up(base_url, url, files["accepted"], lua, args.tokens)
            for turn in range(args.rounds):
                for n in (0, 1) if turn % 2 == 0 else (1, 0):
                    proc, _, url, files, lua = servers[n]
                    cpu = bench.cpu_seconds(proc.pid)
                    result = bench.wrk_lines(url, files[args.case], lua, args.duration)
                    used = (bench.cpu_seconds(proc.pid) - cpu) / result["requests"] * 1e6
                    sides[n].rounds.append((result["requests"] / args.duration, used))
        finally:
            for proc, *_ in servers:
                bench.stop(proc)
    report(sides, args.case, args.duration)


def _start(tmp: Path, side: Side, tokens: int) -> tuple:  # type: ignore[type-arg]
    tmp.mkdir()
    env, params, _, _ = bench.setup(tmp, {"TOKENWARD_TRUSTED_PROXIES": "127.0.0.1/32", **side.settings})
    env["PYTHONPATH"] = str(side.src)
    auths, _ = asyncio.run(bench._fill(Path(env["TOKENWARD_DATA_DIR"]), None, tokens, 1))
    invalid = bench._invalid_auths(tokens)
    lines = {
        "accepted": auths,
        "refused": invalid,
        "mixed": [line for pair in zip(auths, invalid, strict=True) for line in pair],
    }
    files = {}
    for case, case_lines in lines.items():
        files[case] = tmp / f"{case}.txt"
        files[case].write_text("\n".join(case_lines) + "\n")
    lua = tmp / "rotate.lua"
    lua.write_text(bench.ROTATE_HEADERS_LUA)
    port = bench.free_port()
    base_url = f"http://127.0.0.1:{port}"
    proc = bench.start([sys.executable, "-m", "tokenward", "serve", "--port", str(port)], env)
    return proc, base_url, f"{base_url}/verify?config_token={params['app-token']}", files, lua


def report(sides: list[Side], case: str, duration: int) -> None:
    rounds = len(sides[0].rounds)
    print(f"{case}: {rounds} rounds x {duration} s per side, alternating (wrk -t1 -c32, server on core 0)")
    print()
    print("| side | req/s (median) | CPU µs/request (median) | req/s per round | CPU µs per round |")
    print("|---|---:|---:|---|---|")
    medians = []
    for name, side in zip("AB", sides, strict=True):
        rps = statistics.median(r for r, _ in side.rounds)
        cpu = statistics.median(c for _, c in side.rounds)
        medians.append((rps, cpu))
        per_round = ", ".join(f"{r:,.0f}" for r, _ in side.rounds)
        cpus = ", ".join(f"{c:.1f}" for _, c in side.rounds)
        print(f"| {name}: `{side.spec}` | {rps:,.0f} | {cpu:.1f} | {per_round} | {cpus} |")
    print()
    print(f"B / A: req/s {medians[1][0] / medians[0][0]:.3f}, CPU per request {medians[1][1] / medians[0][1]:.3f}")


if __name__ == "__main__":
    main()
