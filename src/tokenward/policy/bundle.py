"""A loaded policy: the seven files turned into engines, with a version.

:func:`build_policy` is sans-I/O — it takes the file contents (as read by
:func:`~tokenward.policy.files.read_sources`) and either returns a complete :class:`Policy`
or raises :class:`~tokenward.errors.PolicyError` naming file:line. It never returns half a
policy, which is what lets :mod:`.reload` keep the previous one in force on error.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tokenward.errors import PolicyError
from tokenward.policy.engine import Engine, build_engine
from tokenward.policy.files import CSV_FILES, MODEL_FILES, MODEL_OF, content_version, decode, parse_rows, read_sources
from tokenward.policy.model import DEFAULT_MODEL, PolicyModel, Rule, parse_model
from tokenward.policy.patterns import Dialect
from tokenward.policy.segments import ALL_SEGMENTS, Segment

__all__ = ["Policy", "build_policy", "load_policy"]


@dataclass(frozen=True, slots=True)
class Policy:
    """Everything needed to answer policy questions, immutable once built."""

    version: str
    dialect: Dialect
    segments: frozenset[Segment]
    engines: Mapping[str, Engine]
    models: Mapping[str, PolicyModel]
    #: Files that were present (the others count as empty).
    present: frozenset[str] = field(default_factory=frozenset)

    def engine(self, file: str) -> Engine:
        return self.engines[file]

    def rules(self, file: str) -> list[Rule]:
        return list(self.engines[file].rules)

    @property
    def short_version(self) -> str:
        return self.version[:12]

    def summary(self) -> dict[str, object]:
        """A JSON-serialisable description for ``/readyz``, metrics and the CLI."""
        return {
            "version": self.version,
            "dialect": self.dialect,
            "segments": sorted(self.segments),
            "files": {name: len(engine.rules) for name, engine in self.engines.items()},
            "slow_path": sorted(name for name, engine in self.engines.items() if not engine.fast),
        }


def _ptypes(model: PolicyModel) -> frozenset[str]:
    if model.shape is not None:
        return frozenset({"p"})
    casbin_model = model.casbin_model()
    return frozenset(key for sec in ("p", "g") if sec in casbin_model.keys() for key in casbin_model[sec])


def build_policy(
    sources: Mapping[str, bytes],
    *,
    dialect: Dialect = "glob",
    segments: frozenset[Segment] = ALL_SEGMENTS,
) -> Policy:
    """Build a :class:`Policy` from file contents keyed by file name; missing files are empty."""
    if dialect not in ("glob", "compat"):
        raise PolicyError(f"unknown policy dialect {dialect!r}; use glob or compat", code="policy_dialect_unknown")
    models: dict[str, PolicyModel] = {}
    for name in MODEL_FILES:
        text = decode(sources[name], file=name) if name in sources else DEFAULT_MODEL
        models[name] = parse_model(text, file=name)
    engines: dict[str, Engine] = {}
    for name in CSV_FILES:
        model = models[MODEL_OF[name]]
        text = decode(sources[name], file=name) if name in sources else ""
        rows = parse_rows(text, file=name, columns=len(model.policy_tokens), ptypes=_ptypes(model))
        engines[name] = build_engine(model, rows, dialect=dialect, file=name)
    return Policy(
        version=content_version(sources),
        dialect=dialect,
        segments=segments,
        engines=engines,
        models=models,
        present=frozenset(sources),
    )


def load_policy(data_dir: Path, *, dialect: Dialect = "glob", segments: frozenset[Segment] = ALL_SEGMENTS) -> Policy:
    """Read the policy files in ``data_dir`` and build a :class:`Policy`."""
    return build_policy(read_sources(data_dir), dialect=dialect, segments=segments)
