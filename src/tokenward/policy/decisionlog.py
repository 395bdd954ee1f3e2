"""A sampled record of the questions the policy answered, in a bounded ring buffer.

The decision log is what ``tokenward policy diff --from-log`` replays: real questions, so a diff
shows what a change does to the traffic an instance actually sees. It is **off by default** and it
is personal data (subjects are e-mail addresses): docs/configuration.md says how to keep it
pseudonymous and how long it lives.

:class:`DecisionLog` is the observer a :class:`~tokenward.policy.bundle.Policy` calls after each
question (:mod:`.questions`). A question is kept with probability ``sample_rate``; only a kept
one pays for finding its deciding row. Kept records go to the ring buffer (the newest ``size``)
and to a bounded *pending* list that a sink (SQL) drains now and then, off the request path;
when the sink falls behind, the oldest pending records are dropped and counted.

Subjects (and e-mail destinations) are pseudonymised with a keyed hash (HMAC-SHA-256) unless
``hash_mode`` is ``off``: ``local`` hashes the part before ``@`` and keeps the domain, so rows
with a wildcard subject (``*@example.com``) still match the replayed question; ``full`` hashes
the whole value. The deciding row of a pseudonymised record is kept as ``file:line`` only when
the row names one person (its text would undo the pseudonym). Pure apart from the injected
clock and random source.
"""

from __future__ import annotations

import hashlib
import hmac
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from tokenward.policy.probes import Probe
from tokenward.policy.questions import DENY, is_user

if TYPE_CHECKING:
    from tokenward.policy.bundle import Policy

__all__ = ["DecisionLog", "DecisionRecord", "HashMode", "pseudonym"]

HashMode = Literal["off", "local", "full"]
_HASH_CHARS = 24


def pseudonym(value: str, key: bytes, mode: HashMode) -> str:
    """``value`` under ``mode``: itself, ``h-<hash>@domain`` (local) or ``h-<hash>`` (full)."""
    if mode == "off":
        return value
    local, at, domain = value.rpartition("@")
    if mode == "local" and at and local and domain:
        digest = hmac.new(key, local.encode(), hashlib.sha256).hexdigest()[:_HASH_CHARS]
        return f"h-{digest}@{domain}"
    return "h-" + hmac.new(key, value.encode(), hashlib.sha256).hexdigest()[:_HASH_CHARS]


def _names_someone(pattern: str) -> bool:
    """Whether a row column names one e-mail user (its text beside a pseudonym would undo it)."""
    return "*" not in pattern and is_user(pattern)


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    """One answered question."""

    at: float
    instance: str
    file: str
    sub: str
    dom: str
    obj: str
    act: str
    decision: Literal["allow", "deny"]
    #: ``file:line  p, ...`` of the deciding row (the first allowing row, or the deny row); "" if none.
    #: Pseudonymised logs keep only ``file:line`` of a row that names one person.
    row: str
    dialect: str
    version: str

    def to_json(self) -> dict[str, object]:
        """One line of the export; ``policy diff --requests`` reads it back."""
        return {
            "at": self.at,
            "instance": self.instance,
            "file": self.file,
            "sub": self.sub,
            "dom": self.dom,
            "obj": self.obj,
            "act": self.act,
            "decision": self.decision,
            "row": self.row,
            "dialect": self.dialect,
            "version": self.version,
        }

    def probe(self) -> Probe:
        """The question, for ``policy diff``."""
        return Probe(self.file, self.sub, self.dom, self.obj, self.act)

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> DecisionRecord:
        decision: Literal["allow", "deny"] = "allow" if data.get("decision") == "allow" else "deny"
        at = data.get("at", 0.0)
        return cls(
            at=float(at) if isinstance(at, int | float) else 0.0,
            decision=decision,
            **{name: str(data.get(name, "")) for name in _TEXT_FIELDS},
        )


_TEXT_FIELDS = ("instance", "file", "sub", "dom", "obj", "act", "row", "dialect", "version")


class DecisionLog:
    """The ring buffer and its sampler; thread-safe (questions are asked from worker threads too)."""

    def __init__(
        self,
        *,
        size: int = 10_000,
        sample_rate: float = 1.0,
        hash_mode: HashMode = "local",
        hash_key: bytes = b"",
        instance: str = "",
        pending_limit: int = 10_000,
        clock: Callable[[], float] = time.time,
        rng: Callable[[], float] = random.random,
    ) -> None:
        if not 0.0 <= sample_rate <= 1.0:
            raise ValueError("sample_rate must be between 0 and 1")
        if hash_mode != "off" and len(hash_key) < 16:
            raise ValueError("a hash key of at least 16 bytes is needed to pseudonymise subjects")
        self.size, self.sample_rate, self.hash_mode = size, sample_rate, hash_mode
        self.instance = instance
        self._key = hash_key
        self._clock, self._rng = clock, rng
        self._ring: deque[DecisionRecord] = deque(maxlen=size)
        self._pending: deque[DecisionRecord] = deque()
        self._pending_limit = pending_limit
        self._lock = threading.Lock()
        self.seen = 0
        self.kept = 0
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._ring)

    def observe(self, policy: Policy, file: str, sub: str, dom: str, obj: str, act: str, allowed: bool) -> None:
        """Called by the policy after each question; keeps a sample of them."""
        self.seen += 1
        if self.sample_rate < 1.0 and self._rng() >= self.sample_rate:
            return
        engine = policy.engine(file)
        deciding = engine.matches(sub, dom, obj, act if allowed else DENY)
        row = ""
        if deciding:
            rule = deciding[0]
            row = rule.where
            if self.hash_mode == "off" or not (_names_someone(rule.sub) or _names_someone(rule.dom)):
                row = f"{rule.where}  {', '.join((rule.ptype, *rule.values()))}"
        record = DecisionRecord(
            at=self._clock(),
            instance=self.instance,
            file=file,
            sub=self._hide(sub),
            dom=self._hide(dom) if is_user(dom) else dom,
            obj=obj,
            act=act,
            decision="allow" if allowed else "deny",
            row=row,
            dialect=policy.dialect,
            version=policy.short_version,
        )
        with self._lock:
            self.kept += 1
            self._ring.append(record)
            self._pending.append(record)
            if len(self._pending) > self._pending_limit:
                self._pending.popleft()
                self.dropped += 1

    def rekey(self, hash_key: bytes) -> None:
        """Pseudonymise with a new key from now on (a new time code is in force)."""
        if self.hash_mode != "off" and len(hash_key) < 16:
            raise ValueError("a hash key of at least 16 bytes is needed to pseudonymise subjects")
        self._key = hash_key

    def _hide(self, value: str) -> str:
        return pseudonym(value, self._key, self.hash_mode)

    def records(self, limit: int | None = None) -> list[DecisionRecord]:
        """The buffered records, oldest first (the newest ``limit`` when given)."""
        with self._lock:
            items = list(self._ring)
        return items if limit is None else items[-limit:] if limit > 0 else []

    def take_pending(self) -> list[DecisionRecord]:
        """Records not yet handed to a sink, oldest first; the pending list is emptied."""
        with self._lock:
            items = list(self._pending)
            self._pending.clear()
        return items

    def stats(self) -> dict[str, object]:
        return {
            "enabled": True,
            "sample_rate": self.sample_rate,
            "hash_mode": self.hash_mode,
            "size": self.size,
            "buffered": len(self._ring),
            "seen": self.seen,
            "kept": self.kept,
            "dropped": self.dropped,
        }
