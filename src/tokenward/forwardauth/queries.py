"""Query engines: pick values out of the request info (and userinfo) for `*_query` params and assertions.

Three engines, none of which can run code (eas's ``js`` engine evaluated URL-supplied JavaScript):

- ``jp``: JSONPath (RFC 9535 flavour, python-jsonpath);
- ``jq``: jq programs, only when the optional ``jq`` module is installed;
- ``template``: a Jinja2 expression template (``{{ … }}`` only, no statements) in a
  :class:`~jinja2.sandbox.SandboxedEnvironment` (no access to internals, bounded ``range``,
  ``*`` and ``**``), rendered to one string.

Queries are compiled once and cached; a query that fails to compile is a 400 ``query_invalid``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Literal

import jsonpath
from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from tokenward.errorcodes import ErrorCode
from tokenward.errors import BadRequest

__all__ = ["ENGINES", "MAX_QUERY_LENGTH", "Engine", "Query", "compile_query", "jq_available"]

Engine = Literal["jp", "jq", "template"]
ENGINES: tuple[str, ...] = ("jp", "jq", "template")
MAX_QUERY_LENGTH = 1024
MAX_TEMPLATE_OUTPUT = 8192

MAX_SEQUENCE = 8192


class _BoundedSandbox(SandboxedEnvironment):
    """Jinja2's sandbox plus bounds on ``*`` and ``**`` (``'a' * 10**10`` would exhaust memory)."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**":
            if not isinstance(right, int | float) or abs(right) > 64 or abs(left) > 2**64:
                raise BadRequest("template query: exponent out of bounds", code=ErrorCode.QUERY_FAILED)
            return left**right
        for seq, n in ((left, right), (right, left)):
            if isinstance(seq, str | list | tuple) and isinstance(n, int) and len(seq) * n > MAX_SEQUENCE:
                raise BadRequest("template query: repetition too large", code=ErrorCode.QUERY_FAILED)
        return super().call_binop(context, operator, left, right)


_ENV = _BoundedSandbox(autoescape=False, undefined=StrictUndefined)


def jq_available() -> bool:
    try:
        import jq  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        return False
    return True


class Query:
    """A compiled query: :meth:`values` returns every match, :meth:`one` exactly one string."""

    __slots__ = ("_run", "engine", "text")

    def __init__(self, engine: str, text: str, run: Callable[[Any], list[Any]]) -> None:
        self.engine = engine
        self.text = text
        self._run = run

    def values(self, data: Any) -> list[Any]:
        """Every value the query selects from ``data`` (400 ``query_failed`` if evaluating it fails)."""
        try:
            return self._run(data)
        except BadRequest:
            raise
        except Exception as exc:  # an engine's own error type: a 400 naming the query, never a 500
            raise BadRequest(
                f"{self.engine} query {self.text!r} failed: {type(exc).__name__}", code=ErrorCode.QUERY_FAILED
            ) from None

    def one(self, data: Any, *, name: str) -> str:
        """Exactly one scalar value as a string; 400 ``query_no_value`` / ``query_ambiguous`` otherwise."""
        found = [v for v in self.values(data) if v is not None]
        if not found:
            raise BadRequest(f"{name}: the {self.engine} query selected nothing", code=ErrorCode.QUERY_NO_VALUE)
        if len(found) > 1:
            raise BadRequest(
                f"{name}: the {self.engine} query selected {len(found)} values", code=ErrorCode.QUERY_AMBIGUOUS
            )
        value = found[0]
        if isinstance(value, dict | list):
            raise BadRequest(
                f"{name}: the {self.engine} query selected an object, not a value", code=ErrorCode.QUERY_AMBIGUOUS
            )
        return value if isinstance(value, str) else str(value).lower() if isinstance(value, bool) else str(value)


def _jsonpath(text: str) -> Callable[[Any], list[Any]]:
    path = jsonpath.compile(text)
    return lambda data: list(path.findall(data))


def _jq(text: str) -> Callable[[Any], list[Any]]:
    import jq

    program = jq.compile(text)
    return lambda data: list(program.input_value(data).all())


def _template(text: str) -> Callable[[Any], list[Any]]:
    # Expressions only: no {% for %} (unbounded loops), no {% set %}; `{{ … }}` computes a value.
    if "{%" in text or "{#" in text:
        raise ValueError("template queries allow {{ expressions }} only, no {% statements %}")
    template = _ENV.from_string(text)

    def run(data: Any) -> list[Any]:
        try:
            out = template.render(data if isinstance(data, dict) else {"data": data})
        except TemplateError as exc:
            raise BadRequest(f"template query failed: {type(exc).__name__}", code=ErrorCode.QUERY_FAILED) from None
        if len(out) > MAX_TEMPLATE_OUTPUT:
            raise BadRequest("template query output is too long", code=ErrorCode.QUERY_FAILED)
        return [out]

    return run


@functools.lru_cache(maxsize=4096)
def compile_query(engine: str, text: str) -> Query:
    """The compiled query (cached). 400 ``query_engine_unknown`` / ``query_invalid`` / ``query_too_long``."""
    if len(text) > MAX_QUERY_LENGTH:
        raise BadRequest(f"a query is limited to {MAX_QUERY_LENGTH} characters", code=ErrorCode.QUERY_TOO_LONG)
    builders: dict[str, Callable[[str], Callable[[Any], list[Any]]]] = {
        "jp": _jsonpath,
        "jq": _jq,
        "template": _template,
    }
    if engine not in builders:
        raise BadRequest(
            f"unknown query engine {engine!r}; choose from {', '.join(ENGINES)} (no code-evaluating engines)",
            code=ErrorCode.QUERY_ENGINE_UNKNOWN,
        )
    if engine == "jq" and not jq_available():
        raise BadRequest(
            "the jq query engine needs the jq Python module (pip install jq)", code=ErrorCode.QUERY_ENGINE_UNKNOWN
        )
    try:
        return Query(engine, text, builders[engine](text))
    except Exception as exc:
        raise BadRequest(
            f"invalid {engine} query {text!r}: {type(exc).__name__}", code=ErrorCode.QUERY_INVALID
        ) from None
