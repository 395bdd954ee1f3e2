"""Shared helpers for the policy tests: the sample rows of ``tokenward policy samples``, uncommented."""

from __future__ import annotations

import re

from tokenward.policy import Policy, build_policy, sample_files
from tokenward.policy.patterns import Dialect


def uncommented(text: str) -> str:
    """The sample file with its ``# p, ...`` rows uncommented (the prose stays commented)."""
    return re.sub(r"^# ?(p,)", r"\1", text, flags=re.MULTILINE)


def seed_policy(dialect: Dialect) -> Policy:
    files = sample_files()
    sources = {name: (uncommented(text) if name.endswith(".csv") else text).encode() for name, text in files.items()}
    return build_policy(sources, dialect=dialect)
