"""Policy engine benchmark: load time, RSS, decision latency; pycasbin side by side.

    .venv/bin/python bench/policy.py            # 1k, 10k, 100k, 1M rules (glob) + compat + pycasbin
    .venv/bin/python bench/policy.py --quick    # 1k and 10k only

Rule sets are generated with realistic shapes: per-user exact rows (login/ask/poke per client),
user-to-user ask rows, per-domain wildcard rows (``*@dom.example`` / ``/*@dom\\.example``),
subdomain wildcards, exact deny rows and a few global ``/*@/*./*`` rows. Requests mix exact
hits, wildcard hits, denied subjects and misses. Figures only; nothing here is asserted.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import statistics
import sys
import time
from typing import Any

import psutil

from tokenward.policy import DEFAULT_MODEL, build_policy, can_login, parse_model
from tokenward.policy.patterns import Dialect, glob_match, glob_segments

SERVER = "auth.example.com"
CLIENTS = [f"{i:040X}" for i in range(1, 9)]


def generate(n: int, dialect: Dialect, seed: int = 7) -> tuple[bytes, list[tuple[str, str, str, str]]]:
    rng = random.Random(seed)
    domains = max(10, n // 200)

    def esc(text: str) -> str:
        return text.replace(".", "\\.") if dialect == "compat" else text

    wild = "/*" if dialect == "compat" else "*"
    lines: list[str] = []
    requests: list[tuple[str, str, str, str]] = []
    users = 0
    while len(lines) < n:
        kind = rng.random()
        client = rng.choice(CLIENTS)
        dom = f"dom{rng.randrange(domains)}.example"
        if kind < 0.80:
            user = f"user{users}@{dom}"
            users += 1
            act = rng.choice(("login", "ask", "poke"))
            lines.append(f"p, {esc(user)}, {SERVER}, {client}, {act}")
            requests.append((user, SERVER, client, act))
        elif kind < 0.90:
            a, b = f"user{rng.randrange(users + 1)}@{dom}", f"peer{rng.randrange(1000)}@{dom}"
            lines.append(f"p, {esc(a)}, {esc(b)}, {client}, ask")
            requests.append((a, b, client, "ask"))
        elif kind < 0.97:
            lines.append(f"p, {wild}@{esc(dom)}, {SERVER}, {client}, login")
            requests.append((f"someone{rng.randrange(10**6)}@{dom}", SERVER, client, "login"))
        elif kind < 0.99:
            lines.append(f"p, {wild}@{wild}.{esc(dom)}, {SERVER}, {client}, ask")
            requests.append((f"x@mail.{dom}", SERVER, client, "ask"))
        else:
            user = f"blocked{rng.randrange(10**6)}@{dom}"
            lines.append(f"p, {esc(user)}, {SERVER}, {client}, deny")
            requests.append((user, SERVER, client, "login"))
    for client in CLIENTS[:2]:
        lines.append(f"p, /*@/*./*, {SERVER}, {client}, poke")
    misses = [(f"nobody{i}@nowhere.test", SERVER, rng.choice(CLIENTS), "login") for i in range(len(requests) // 4)]
    requests.extend(misses)
    rng.shuffle(requests)
    return ("\n".join(lines) + "\n").encode(), requests


def rss_mb() -> float:
    return float(psutil.Process().memory_info().rss) / 2**20


def latencies(func: Any, requests: list[tuple[str, str, str, str]], count: int) -> list[float]:
    sample = requests[:count]
    for request in sample[:1000]:
        func(*request)  # warm up
    timer = time.perf_counter_ns
    out: list[float] = []
    for request in sample:
        start = timer()
        func(*request)
        out.append((timer() - start) / 1000)
    return out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run(n: int, dialect: Dialect, samples: int) -> dict[str, Any]:
    data, requests = generate(n, dialect)
    gc.collect()
    before = rss_mb()
    start = time.perf_counter()
    policy = build_policy({"userpolicy.csv": data}, dialect=dialect)
    load = time.perf_counter() - start
    rss = rss_mb() - before
    engine = policy.engine("userpolicy.csv")
    lat = latencies(engine.enforce, requests, samples)
    question = latencies(lambda s, d, c, a: can_login(policy, s, d, c), requests, samples)
    baseline = latencies(lambda s, d, c, a: None, requests, samples)
    row = {
        "rules": n,
        "load_s": load,
        "rss_mb": rss,
        "median_us": statistics.median(lat),
        "p99_us": pct(lat, 0.99),
        "question_median_us": statistics.median(question),
        "timer_floor_us": statistics.median(baseline),
        "engine": engine,
        "requests": requests,
    }
    return row


def pycasbin_median(
    n: int, requests: list[tuple[str, str, str, str]], data: bytes, budget_s: float
) -> tuple[float, int]:
    import casbin
    from casbin.persist.adapter import Adapter

    rows = [[f.strip() for f in line.split(",")][1:] for line in data.decode().splitlines() if line]

    class Rows(Adapter):  # type: ignore[misc]
        def load_policy(self, model: Any) -> None:
            model.add_policies("p", "p", rows)

    enforcer = casbin.Enforcer(parse_model(DEFAULT_MODEL).casbin_model(), Rows())
    enforcer.add_function("regexMatch", lambda v, p: glob_match(glob_segments(p), v.casefold()))
    times: list[float] = []
    deadline = time.perf_counter() + budget_s
    for request in requests:
        start = time.perf_counter()
        enforcer.enforce(*request)
        times.append((time.perf_counter() - start) * 1e6)
        if time.perf_counter() > deadline and len(times) >= 5:
            break
    return statistics.median(times), len(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="1k and 10k rules only")
    parser.add_argument("--samples", type=int, default=20_000, help="decisions timed per size")
    args = parser.parse_args()
    sizes = [1_000, 10_000] if args.quick else [1_000, 10_000, 100_000, 1_000_000]
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores; per-decision timings include the ~timer floor")
    print(f"{'dialect':8} {'rules':>9} {'load s':>8} {'RSS MB':>8} {'median µs':>10} {'p99 µs':>8} {'login() µs':>11}")
    results: dict[tuple[str, int], dict[str, Any]] = {}
    runs: tuple[tuple[Dialect, list[int]], ...] = (("glob", sizes), ("compat", [s for s in sizes if s <= 100_000]))
    for dialect, dialect_sizes in runs:
        for n in dialect_sizes:
            row = run(n, dialect, args.samples)
            results[(dialect, n)] = row
            print(
                f"{dialect:8} {n:>9,} {row['load_s']:>8.2f} {row['rss_mb']:>8.0f} {row['median_us']:>10.2f} "
                f"{row['p99_us']:>8.2f} {row['question_median_us']:>11.2f}   (floor {row['timer_floor_us']:.2f})"
            )
            del row["engine"]
            gc.collect()
    print("\npycasbin side by side (glob semantics registered as regexMatch; bounded number of decisions)")
    for n in (1_000, 10_000):
        data, requests = generate(n, "glob")
        median, count = pycasbin_median(n, requests, data, budget_s=8.0)
        ours = results[("glob", n)]["median_us"]
        print(
            f"  {n:>7,} rules: pycasbin median {median:,.0f} µs over {count} decisions; ours {ours:.2f} µs "
            f"-> {median / ours:,.0f}x"
        )


if __name__ == "__main__":
    main()
