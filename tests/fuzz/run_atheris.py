"""Run one fuzz target of tests/fuzz/targets.py under atheris (coverage-guided, libFuzzer) for a bounded time.

    python -m tests.fuzz.run_atheris TARGET [SECONDS]     (``make fuzz`` runs every target)

A crash (any exception but a TokenwardError) stops the run, prints the traceback and leaves the
input in ``.fuzz/crash-*``; replay it with ``python -m tests.fuzz.run_atheris TARGET --replay FILE``.
The corpus grows in ``.fuzz/corpus/TARGET`` (git-ignored) so later runs start where the last one
stopped; the valid samples of :func:`tests.fuzz.targets.seeds` start it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["tokenward"]):
    from tests.fuzz.targets import TARGETS, seeds

FUZZ_DIR = Path(".fuzz")


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[1] not in TARGETS:
        print(f"usage: run_atheris.py TARGET [SECONDS | --replay FILE]; targets: {', '.join(TARGETS)}", file=sys.stderr)
        return 2
    target = TARGETS[argv[1]]
    if len(argv) == 4 and argv[2] == "--replay":
        target.run_bytes(Path(argv[3]).read_bytes())
        print("no crash")
        return 0
    seconds = int(argv[2]) if len(argv) > 2 else 60
    corpus = FUZZ_DIR / "corpus" / target.name
    corpus.mkdir(parents=True, exist_ok=True)
    for i, sample in enumerate(seeds()[target.name]):
        (corpus / f"seed-{i}").write_bytes(sample)
    args = [
        argv[0],
        str(corpus),
        f"-max_total_time={seconds}",
        f"-artifact_prefix={FUZZ_DIR}/crash-{target.name}-",
        "-max_len=4096",
        "-rss_limit_mb=2048",
        "-print_final_stats=1",
    ]
    atheris.Setup(args, target.run_bytes)
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
