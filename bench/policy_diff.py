"""Policy diff benchmark: two 100,000-row policies, 1,000,000 questions, on one core.

    taskset -c 0 .venv/bin/python bench/policy_diff.py            # 100k rows, 1M questions
    taskset -c 0 .venv/bin/python bench/policy_diff.py --quick    # 10k rows, 100k questions
    taskset -c 0 .venv/bin/python bench/policy_diff.py --dialect compat   # the same rows as regexes

OLD is a generated ``userpolicy.csv`` with realistic shapes (per-user exact rows over 8 client
IDs, user-to-user rows, per-domain and subdomain wildcards, exact deny rows, global rows). NEW is
OLD with 1 % of its rows edited: some removed, some added (exact grants, new domain wildcards,
new deny rows, one deny wildcard over a whole domain). The questions are distinct and mixed like
real traffic: subjects granted by exact rows, subjects that only wildcards cover, denied
subjects, and strangers no row names (a quarter), over every action.

Printed: load time of both sides, the diff (the delta index, as ``tokenward policy diff`` runs
it), the same diff answered by both policies for every question (no delta index), and the
baseline measured in the same run — every question answered once by OLD, the way the server
answers it (``act ∧ ¬deny``) — with the ratios. Times are CPU seconds of this process (the
pinned core may be shared), with wall-clock seconds beside them. Figures only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import sys
import time
from collections.abc import Callable
from typing import Any

from tokenward.policy import Policy, build_policy
from tokenward.policy.diff import decide, diff_policies
from tokenward.policy.engine import MatcherCache
from tokenward.policy.patterns import Dialect
from tokenward.policy.probes import Probe, generate_probes

SERVER = "auth.example.com"
CLIENTS = [f"{i:040X}" for i in range(1, 9)]
FILE = "userpolicy.csv"
ACTS = ("login", "ask", "poke")


DIALECT: Dialect = "glob"


def esc(value: str) -> str:
    """A literal as the dialect writes it (compat: dots escaped)."""
    return value.replace(".", "\\.") if DIALECT == "compat" else value


def wild() -> str:
    return "/*" if DIALECT == "compat" else "*"


def generate_rows(n: int, rng: random.Random) -> list[str]:
    domains = max(10, n // 200)
    rows: list[str] = []
    w = wild()
    for i in range(n - len(CLIENTS[:2])):
        kind = rng.random()
        client = rng.choice(CLIENTS)
        dom = f"dom{rng.randrange(domains)}.example"
        if kind < 0.80:
            rows.append(f"p, {esc(f'user{i}@{dom}')}, {SERVER}, {client}, {rng.choice(ACTS)}")
        elif kind < 0.90:
            sub, peer = f"user{rng.randrange(n)}@{dom}", f"peer{rng.randrange(1000)}@{dom}"
            rows.append(f"p, {esc(sub)}, {esc(peer)}, {client}, ask")
        elif kind < 0.97:
            rows.append(f"p, {w}@{esc(dom)}, {SERVER}, {client}, login")
        elif kind < 0.99:
            rows.append(f"p, {w}@{w}.{esc(dom)}, {SERVER}, {client}, ask")
        else:
            rows.append(f"p, {esc(f'blocked{i}@{dom}')}, {SERVER}, {client}, deny")
    rows.extend(f"p, {w}@{w}.{w}, {SERVER}, {client}, poke" for client in CLIENTS[:2])
    return rows


def edit(rows: list[str], rng: random.Random) -> list[str]:
    """1 % of the rows: half removed, half added (grants, wildcards, denies)."""
    changes = max(2, len(rows) // 100)
    edited = list(rows)
    for _ in range(changes // 2):
        edited.pop(rng.randrange(len(edited) - 2))
    domains = max(10, len(rows) // 200)
    for i in range(changes // 2):
        client, dom = rng.choice(CLIENTS), f"dom{rng.randrange(domains)}.example"
        kind = rng.random()
        if kind < 0.6:
            edited.append(f"p, {esc(f'newuser{i}@{dom}')}, {SERVER}, {client}, {rng.choice(ACTS)}")
        elif kind < 0.8:
            edited.append(f"p, {wild()}@{esc(dom)}, {SERVER}, {client}, ask")
        else:
            edited.append(f"p, {esc(f'user{rng.randrange(len(rows))}@{dom}')}, {SERVER}, {client}, deny")
    edited.append(f"p, {wild()}@{esc(f'dom{rng.randrange(domains)}.example')}, {SERVER}, {CLIENTS[0]}, deny")
    return edited


def questions(rows: list[str], count: int, rng: random.Random) -> list[Probe]:
    """``count`` distinct questions: row subjects, wildcard-only subjects, denied ones, strangers."""
    subjects = [row.split(", ")[1].replace("\\", "").replace("/*", "*") for row in rows]
    found: dict[Probe, None] = {}
    while len(found) < count:
        kind = rng.random()
        sub = rng.choice(subjects)
        if kind < 0.25:
            sub = f"stranger{rng.randrange(10**9)}@nowhere{rng.randrange(100)}.test"
        elif "*" in sub:
            sub = sub.replace("*", f"u{rng.randrange(10**6)}", 1).replace("*", "mail")
        dom = SERVER if rng.random() < 0.9 else f"peer{rng.randrange(1000)}@dom{rng.randrange(500)}.example"
        probe = Probe(FILE, sub, dom, rng.choice(CLIENTS), rng.choice(ACTS))
        found[probe] = None
    return list(found)


WALL: dict[str, float] = {}


def timed(func: Callable[[], Any], name: str = "") -> tuple[float, Any]:
    """CPU seconds of ``func`` (the core is shared on a loaded machine; wall time kept in WALL)."""
    gc.collect()
    start, wall = time.process_time(), time.perf_counter()
    result = func()
    WALL[name] = time.perf_counter() - wall
    return time.process_time() - start, result


MATCHERS: MatcherCache = {}


def build(rows: list[str]) -> Policy:
    """As ``tokenward policy diff`` builds its two sides: compiled patterns shared between them."""
    return build_policy({FILE: ("\n".join(rows) + "\n").encode()}, dialect=DIALECT, matchers=MATCHERS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="10k rows, 100k questions")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--questions", type=int, default=1_000_000)
    parser.add_argument("--no-full", action="store_true", help="skip the diff without the delta index")
    parser.add_argument("--dialect", choices=("glob", "compat"), default="glob")
    args = parser.parse_args()
    global DIALECT
    DIALECT = args.dialect
    n, count = (10_000, 100_000) if args.quick else (args.rows, args.questions)
    rng = random.Random(18)
    old_rows = generate_rows(n, rng)
    new_rows = edit(old_rows, rng)
    asked = questions(old_rows + new_rows, count, rng)
    affinity = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else "?"
    version = sys.version.split()[0]
    print(f"python {version}, cpus {affinity}; {n:,} {DIALECT} rows per side, {len(asked):,} distinct questions")

    old_s, old = timed(lambda: build(old_rows), "old")
    new_s, new = timed(lambda: build(new_rows), "new")
    load_s, WALL["load"] = old_s + new_s, WALL["old"] + WALL["new"]
    print(f"load both sides                 {load_s:8.2f} s  (wall {WALL['load']:.2f}; NEW {new_s:.2f} s of it)")

    def baseline() -> int:
        engine = old.engine(FILE)
        return sum(decide(engine, probe) for probe in asked)

    base_s, allowed = timed(baseline, "base")
    print(f"baseline: answer each once (OLD) {base_s:7.2f} s  (wall {WALL['base']:.2f})   {allowed:,} allowed")

    diff_s, result = timed(lambda: diff_policies(old, new, asked), "diff")
    print(
        f"diff (delta index)              {diff_s:8.2f} s  (wall {WALL['diff']:.2f})   ratio to baseline "
        f"{diff_s / base_s:.2f}; {result.flips:,} flips in {len(result.groups):,} rows, "
        f"{result.evaluated:,} questions answered by both"
    )
    print(f"  load + diff                   {load_s + diff_s:8.2f} s  (wall {WALL['load'] + WALL['diff']:.2f})")

    if not args.no_full:
        full_s, full = timed(lambda: diff_policies(old, new, asked, full=True), "full")
        same = "same flips" if full.flips == result.flips else f"DIFFERENT: {full.flips:,} flips"
        print(
            f"diff, every question both sides {full_s:8.2f} s  (wall {WALL['full']:.2f})   "
            f"ratio to baseline {full_s / base_s:.2f}   ({same})"
        )

    gen_s, generated = timed(lambda: generate_probes(old, new), "gen")
    gdiff_s, gresult = timed(lambda: diff_policies(old, new, generated), "gdiff")
    print(
        f"generate from every row         {gen_s:8.2f} s  (wall {WALL['gen']:.2f})   {len(generated):,} questions; "
        f"diff {gdiff_s:.2f} s, {gresult.flips:,} flips in {len(gresult.groups):,} rows"
    )


if __name__ == "__main__":
    main()
