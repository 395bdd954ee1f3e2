"""``tokenward policy lint``: rows that probably do not mean what their author thinks.

Each :class:`Finding` names file:line and has a stable ``code``:

``load-error``        the policy does not load (the server would refuse it)
``dialect-differs``   the row matches different requests in glob and compat; a witness is shown
``unescaped-dot``     compat: ``.`` matches any character (``mytoken.server`` ~ ``mytokenXserver``)
``never-matches``     the pattern can match no e-mail, host or hash (``/*@/mydomain.com``)
``duplicate-row``     the same row appears earlier in the file
``unknown-action``    an action the file's questions never ask
``lowercase-hash``    compat: a SHA-512 hash in lowercase, compared case-sensitively

``dialect-differs`` and ``unescaped-dot`` are *notes* (:data:`NOTES`): the row loads and means what
the chosen dialect says, but a reader who knows the other dialect may read it differently. Seed
rows written for the original server carry them on nearly every row, so the CLI explains each
once and counts them (:func:`group_notes`). The other codes are *problems*: look at each row.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from tokenward.errors import PolicyError
from tokenward.policy.bundle import build_policy
from tokenward.policy.model import Rule
from tokenward.policy.patterns import Dialect, check_regex, glob_match, glob_segments, is_glob_literal

__all__ = ["KNOWN_ACTIONS", "NOTES", "Finding", "NoteGroup", "group_notes", "lint", "witness"]

#: Actions each file's questions ask (``clientscopespolicy.csv`` holds free-form scopes).
KNOWN_ACTIONS: Mapping[str, frozenset[str]] = {
    "userpolicy.csv": frozenset({"login", "ask", "poke", "deny", "admin"}),
    "resourcepolicy.csv": frozenset({"login", "ask", "poke", "deny", "systemlogin"}),
    "clientappspolicy.csv": frozenset({"clientaccess", "deny"}),
    "captchapolicy.csv": frozenset({"enable", "deny"}),
}
_HASH = re.compile(r"^[0-9A-Fa-f]{32,}$")
_WHERE = re.compile(r"^([\w.]+):(\d+): ")
_GLOB_NEVER = re.compile(r"[\\^$\[\](){}|\s]")

#: Finding codes that are notes rather than problems, each with the one explanation shown for all of them.
NOTES: Mapping[str, str] = {
    "dialect-differs": (
        "glob (the default) anchors a pattern to the whole value, reads * and /* as 'any characters', '.' as a "
        "dot and e-mails case-insensitively; compat searches an unanchored regular expression as the original "
        "server did, so /* means 'zero or more slashes' and '.' any character. These patterns match different "
        "values in the two dialects: nothing to fix if you chose your dialect, worth a look when you move "
        "rows from one to the other (tokenward policy check shows a decision)."
    ),
    "unescaped-dot": (
        "in compat a '.' matches any character, as in the original server (mytoken.server also matches "
        "mytokenXserver.org); write '\\.' for a literal dot, or use the glob dialect, where '.' is a dot."
    ),
}


@dataclass(frozen=True, slots=True)
class Finding:
    file: str
    line: int
    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.code}: {self.message}"

    @property
    def severity(self) -> str:
        """``note`` (see :data:`NOTES`) or ``problem``."""
        return "note" if self.code in NOTES else "problem"

    def to_json(self) -> dict[str, object]:
        return {
            "where": f"{self.file}:{self.line}",
            "code": self.code,
            "severity": self.severity,
            "message": self.message,
        }


@dataclass(frozen=True, slots=True)
class NoteGroup:
    """All findings of one note code: explained once, counted, a few shown."""

    code: str
    explanation: str
    findings: tuple[Finding, ...]

    @property
    def rows(self) -> int:
        return len({(f.file, f.line) for f in self.findings})

    def examples(self, limit: int = 3) -> tuple[Finding, ...]:
        """Up to ``limit`` findings with distinct messages (the same pattern on 40 rows is one example)."""
        seen: dict[str, Finding] = {}
        for finding in self.findings:
            seen.setdefault(finding.message, finding)
            if len(seen) == limit:
                break
        return tuple(seen.values())


def group_notes(findings: list[Finding]) -> list[NoteGroup]:
    """The note findings grouped by code, in :data:`NOTES` order; codes without findings are left out."""
    groups = []
    for code, explanation in NOTES.items():
        members = tuple(f for f in findings if f.code == code)
        if members:
            groups.append(NoteGroup(code, explanation, members))
    return groups


def _short(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:37] + "...")


def _compat(pattern: str, value: str) -> bool | None:
    try:
        check_regex(pattern)
        return re.search(pattern, value) is not None
    except PolicyError:
        return None


def witness(pattern: str, *, allow_equal: bool = False) -> tuple[str, bool] | None:
    """A value the two dialects disagree on for ``pattern``: (value, matched in glob) or None."""
    base = "x".join(glob_segments(pattern)) if not is_glob_literal(pattern) else pattern
    candidates = [base, "x" + base, base + "x", base.upper(), base.replace(".", "X", 1), "a@b", "a@b.c", pattern]
    for value in candidates:
        in_glob = glob_match(glob_segments(pattern), value.casefold())
        in_compat = _compat(pattern, value)
        if in_compat is None:
            return None
        if allow_equal and value == pattern:
            in_compat = True
        if in_glob != in_compat:
            return value, in_glob
    return None


def _never(pattern: str, dialect: Dialect) -> str | None:
    if dialect == "glob":
        rest = re.sub(r"/?\*", "", pattern)
        if "/" in rest or _GLOB_NEVER.search(rest):
            return "contains '/', whitespace or regex syntax, which no e-mail, host or hash contains (glob is literal)"
        return None
    rest = re.sub(r"/\*|\\.", "", pattern)
    if "/" in rest:
        return "requires a literal '/', which no e-mail, host or hash contains"
    return None


def _unescaped_dot(pattern: str) -> bool:
    return re.search(r"(?<!\\)\.", re.sub(r"\[[^\]]*\]", "", pattern)) is not None


def _row_findings(rule: Rule, dialect: Dialect) -> Iterator[Finding]:
    def finding(code: str, message: str) -> Finding:
        return Finding(rule.file, rule.line, code, message)

    for column, pattern in (("sub", rule.sub), ("dom", rule.dom)):
        found = witness(pattern, allow_equal=column == "dom")
        if found is not None:
            value, in_glob = found
            yes, no = ("glob", "compat") if in_glob else ("compat", "glob")
            yield finding(
                "dialect-differs", f"{column} {_short(pattern)} matches {_short(value)} in {yes} but not in {no}"
            )
        reason = _never(pattern, dialect)
        if reason is not None:
            yield finding("never-matches", f"{column} {_short(pattern)} {reason}")
        if dialect == "compat" and _unescaped_dot(pattern):
            yield finding("unescaped-dot", f"{column} {_short(pattern)}: '.' matches any character; write '\\.'")
    hash_column = {"clientappspolicy.csv": rule.sub, "clientscopespolicy.csv": rule.dom}.get(rule.file)
    if dialect == "compat" and hash_column and _HASH.match(hash_column) and hash_column != hash_column.upper():
        yield finding("lowercase-hash", f"hash {hash_column[:16]}… is lowercase; compat compares case-sensitively")
    known = KNOWN_ACTIONS.get(rule.file)
    if known is not None and rule.act not in known:
        yield finding(
            "unknown-action", f"action {rule.act!r} is never asked of {rule.file} ({', '.join(sorted(known))})"
        )


def lint(sources: Mapping[str, bytes], *, dialect: Dialect = "glob") -> list[Finding]:
    """Lint the policy files' contents as they would be loaded in ``dialect``."""
    try:
        policy = build_policy(sources, dialect=dialect)
    except PolicyError as exc:
        where = _WHERE.match(exc.detail)
        file, line = (where.group(1), int(where.group(2))) if where else ("<policy>", 0)
        return [Finding(file, line, "load-error", f"{exc.error_code}: {exc.detail}")]
    findings: list[Finding] = []
    for name, engine in policy.engines.items():
        seen: dict[tuple[str, ...], int] = {}
        for rule in engine.rules:
            key = (rule.ptype, *rule.values())
            if key in seen:
                findings.append(Finding(name, rule.line, "duplicate-row", f"same row as {name}:{seen[key]}"))
            else:
                seen[key] = rule.line
            findings.extend(_row_findings(rule, dialect))
    return findings
