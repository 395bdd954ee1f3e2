"""A loaded policy: the seven files turned into engines, with a version.

:func:`build_policy` is sans-I/O — it takes the file contents (as read by
:func:`~tokenward.policy.files.read_sources`) and either returns a complete :class:`Policy`
or raises :class:`~tokenward.errors.PolicyError` naming file:line. It never returns half a
policy, which is what lets :mod:`.reload` keep the previous one in force on error.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tokenward.errorcodes import ErrorCode
from tokenward.errors import PolicyError
from tokenward.policy.engine import Engine, MatcherCache, build_engine
from tokenward.policy.files import CSV_FILES, MODEL_FILES, MODEL_OF, content_version, decode, parse_rows, read_sources
from tokenward.policy.model import DEFAULT_MODEL, PolicyModel, Rule, parse_model
from tokenward.policy.patterns import Dialect
from tokenward.policy.segments import ALL_SEGMENTS, Segment

__all__ = ["Observer", "Policy", "build_policy", "load_policy", "with_files"]

#: ``observer(policy, file, sub, dom, obj, act, allowed)``, see :class:`~.decisionlog.DecisionLog`.
Observer = Callable[["Policy", str, str, str, str, str, bool], None]


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
    #: Called after each question the server asks (:mod:`.questions`): the decision log.
    observer: Observer | None = field(default=None, compare=False, repr=False)

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
    matchers: MatcherCache | None = None,
) -> Policy:
    """Build a :class:`Policy` from file contents keyed by file name; missing files are empty.

    ``matchers`` shares compiled patterns with another build (``policy diff`` builds two policies
    that differ in a few rows: each pattern is compiled once).
    """
    if dialect not in ("glob", "compat"):
        raise PolicyError(
            f"unknown policy dialect {dialect!r}; use glob or compat", code=ErrorCode.POLICY_DIALECT_UNKNOWN
        )
    models: dict[str, PolicyModel] = {}
    for name in MODEL_FILES:
        text = decode(sources[name], file=name) if name in sources else DEFAULT_MODEL
        models[name] = parse_model(text, file=name)
    engines: dict[str, Engine] = {}
    for name in CSV_FILES:
        model = models[MODEL_OF[name]]
        text = decode(sources[name], file=name) if name in sources else ""
        rows = parse_rows(text, file=name, columns=len(model.policy_tokens), ptypes=_ptypes(model))
        engines[name] = build_engine(model, rows, dialect=dialect, file=name, matchers=matchers)
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


def with_files(policy: Policy, changes: Mapping[str, bytes], *, dialect: Dialect | None = None) -> Policy:
    """``policy`` with some files replaced (and, optionally, another dialect), built from its own rows.

    What-if without the sources on disk: the files not in ``changes`` keep the rows the policy
    was built from. A changed model file rebuilds the engines of the files it governs. Raises
    :class:`PolicyError` naming file:line, like :func:`build_policy`.
    """
    chosen: Dialect = dialect or policy.dialect
    if chosen not in ("glob", "compat"):
        raise PolicyError(
            f"unknown policy dialect {chosen!r}; use glob or compat", code=ErrorCode.POLICY_DIALECT_UNKNOWN
        )
    for name in changes:
        if name not in MODEL_FILES and name not in CSV_FILES:
            raise PolicyError(f"unknown policy file {name!r}", code=ErrorCode.POLICY_FILE_UNKNOWN)
    models = dict(policy.models)
    for name in MODEL_FILES:
        if name in changes:
            models[name] = parse_model(decode(changes[name], file=name), file=name)
    engines: dict[str, Engine] = {}
    for name in CSV_FILES:
        model = models[MODEL_OF[name]]
        if name in changes:
            text = decode(changes[name], file=name)
            rows = parse_rows(text, file=name, columns=len(model.policy_tokens), ptypes=_ptypes(model))
        elif MODEL_OF[name] in changes or chosen != policy.dialect:
            rows = list(policy.engines[name].rules)
        else:
            engines[name] = policy.engines[name]
            continue
        engines[name] = build_engine(model, rows, dialect=chosen, file=name)
    digest = hashlib.sha256(policy.version.encode() + b"\0" + chosen.encode())
    digest.update(content_version(changes).encode())
    return dataclasses.replace(
        policy,
        version=digest.hexdigest(),
        dialect=chosen,
        engines=engines,
        models=models,
        present=policy.present | frozenset(changes),
        observer=None,
    )
