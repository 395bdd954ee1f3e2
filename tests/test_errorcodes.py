"""The error code registry (``tokenward.errorcodes``), docs/errors.md and the codes src raises agree."""

from __future__ import annotations

import ast
import json
import pathlib
import re

from tokenward import errors
from tokenward.errorcodes import ErrorCode

ROOT = pathlib.Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "tokenward"
DOC = ROOT / "docs" / "errors.md"
_ROW = re.compile(r"^\| `([a-z0-9_]+)` \| (\d{3}) \| (.+) \|$", re.MULTILINE)

# Functions that take an error code as their ``code`` keyword besides the exception classes themselves.
_CODE_TAKERS = {"b64u_decode", "Outcome", "UpstreamError"}


_ERROR_CLASSES = [
    name
    for name in errors.__all__
    if isinstance(getattr(errors, name), type) and issubclass(getattr(errors, name), errors.TokenwardError)
]


def _modules() -> list[tuple[pathlib.Path, ast.Module]]:
    return [(path, ast.parse(path.read_text(encoding="utf-8"))) for path in sorted(SRC.rglob("*.py"))]


def _error_classes(modules: list[tuple[pathlib.Path, ast.Module]]) -> set[str]:
    """Names of every class in src that derives from TokenwardError (by the names of its bases)."""
    known = {name for name in _ERROR_CLASSES}
    classes = [node for _, tree in modules for node in ast.walk(tree) if isinstance(node, ast.ClassDef)]
    grew = True
    while grew:
        grew = False
        for node in classes:
            bases = {
                b.id if isinstance(b, ast.Name) else b.attr if isinstance(b, ast.Attribute) else "" for b in node.bases
            }
            if node.name not in known and bases & known:
                known.add(node.name)
                grew = True
    return known


def _callee(node: ast.Call) -> str:
    func = node.func
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""


def test_every_code_is_documented_with_its_status_and_meaning() -> None:
    rows = {code: (int(status), meaning) for code, status, meaning in _ROW.findall(DOC.read_text(encoding="utf-8"))}
    missing = [str(c) for c in ErrorCode if c not in rows]
    wrong = [str(c) for c in ErrorCode if c in rows and rows[c] != (c.status, c.meaning)]
    stale = sorted(set(rows) - set(ErrorCode))
    expected = "".join(f"| `{c}` | {c.status} | {c.meaning} |\n" for c in ErrorCode)
    assert (missing, wrong, stale) == ([], [], []), f"docs/errors.md is out of date; its table should be:\n{expected}"


def test_every_member_has_a_status_and_a_one_line_meaning() -> None:
    for code in ErrorCode:
        assert 300 <= code.status <= 599, code  # 3xx: a /verify redirect outcome
        assert code.meaning.strip() and "\n" not in code.meaning and "|" not in code.meaning, code
        assert code == code.value and code.name == code.value.upper(), code


def test_members_render_as_the_plain_string_on_the_wire() -> None:
    code = ErrorCode.APPTOKEN_EXPIRED
    assert json.dumps({"error": code}) == '{"error": "apptoken_expired"}'
    assert f"{code}" == str(code) == "apptoken_expired"
    assert errors.Unauthorized("x", code=code).to_dict() == {"error": "apptoken_expired", "detail": "x"}


def test_every_default_code_of_an_error_class_is_registered() -> None:
    for name in _ERROR_CLASSES:
        kind = getattr(errors, name)
        assert isinstance(kind.code, ErrorCode), name
        assert kind.code in set(ErrorCode), f"{name}.code {kind.code!r} is not in ErrorCode"


def test_src_raises_registry_members_not_string_literals() -> None:
    modules = _modules()
    takers = _error_classes(modules) | _CODE_TAKERS
    unknown, seen = [], 0
    for path, tree in modules:
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and _callee(node) in takers:
                for keyword in node.keywords:
                    value = keyword.value
                    seen += keyword.arg == "code"
                    if keyword.arg == "code" and isinstance(value, (ast.Constant, ast.JoinedStr, ast.BinOp)):
                        unknown.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(value)}")
    assert seen > 200  # the scan sees the raising sites
    # mypy --strict holds the rest: TokenwardError, Outcome and friends take an ErrorCode, not a str.
    assert unknown == [], "pass a member of tokenward.errorcodes.ErrorCode (add it there and to docs/errors.md)"


# Codes also sent with a second status (documented in their meaning); every other HTTP raising site must
# raise a class whose status is the registry's. The CLI, the client SDK and the data dir are not HTTP surfaces.
_ALSO_SENT_WITH = {ErrorCode.INVALID_REQUEST: 400, ErrorCode.POLICY_NOT_LOADED: 503}
_NOT_HTTP = ("cli/", "client/", "datadir.py")


def test_raising_sites_send_the_registered_status() -> None:
    statuses = {name: getattr(errors, name).status for name in _ERROR_CLASSES} | {"AuthenticationRequired": 401}
    wrong = []
    for path, tree in _modules():
        if str(path.relative_to(SRC)).startswith(_NOT_HTTP):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and _callee(node) in statuses:
                for keyword in node.keywords:
                    value = keyword.value
                    if (
                        keyword.arg == "code"
                        and isinstance(value, ast.Attribute)
                        and ast.unparse(value.value) == "ErrorCode"
                    ):
                        code, status = ErrorCode[value.attr], statuses[_callee(node)]
                        if status not in (code.status, _ALSO_SENT_WITH.get(code)):
                            wrong.append(
                                f"{path.relative_to(ROOT)}:{node.lineno}: {code} as {status}, not {code.status}"
                            )
    assert wrong == []


def test_the_pam_helper_reacts_to_registered_codes() -> None:
    # hostpam runs on the system python without tokenward installed: it keeps the wire strings.
    from tokenward.hostpam.client import SESSION_ERRORS

    assert SESSION_ERRORS <= set(ErrorCode)
