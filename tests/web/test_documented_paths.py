"""Every HTTP path the README and docs/ name is served by the app, with the method they name.

The docs drifted once (a QR path that answered 404, `/api/session` listed as if GET existed);
this test reads the Markdown and asks the app's router, so they cannot drift silently again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from starlette.routing import BaseRoute, Match
from starlette.types import Scope

from tests.helpers import clear_tokenward_env, init_data_dir
from tokenward.settings import Settings
from tokenward.web.app import create_app

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD")
# First path segments the app serves; a backticked path under another one (/var/lib/…) is a file.
PREFIXES = (
    "api",
    "auth-app",
    "oidc",
    "admin",
    "account",
    "login",
    "logout",
    "enroll",
    "verify",
    "authenticator",
    "healthz",
    "readyz",
    "metrics",
    "openapi.json",
    ".well-known",
)
FENCE = re.compile(r"^```.*?^```", re.S | re.M)
SPAN = re.compile(r"`([^`\n]+)`")
METHOD_PATH = re.compile(rf"^({'|'.join(METHODS)}) (/\S*)")
CURL = re.compile(r"curl\b[^\n]*?(?:--request|-X) (\w+) '?https?://[^/\s']+(/[^\s'?]*)")


@dataclass(frozen=True)
class Mention:
    document: str
    method: str | None
    path: str  # as written, for the failure message
    probe: str  # a concrete path to route: placeholders filled in, query and optional parts dropped


def _probe(path: str) -> str | None:
    path = re.sub(r"\[[^\]]*\]", "", path)  # optional parts: /api/app-tokens/{id}[?user=]
    path = path.split("?", 1)[0].split("#", 1)[0].rstrip(".,;:")
    path = re.sub(r"\{[^}]*\}|<[^>]*>|\b[A-Z][A-Z_]+\b", "x1", path)  # {id}, <id>, STORE_ID
    if "…" in path or path.rstrip("/").split("/")[1:2] == [] or path.split("/")[1] not in PREFIXES:
        return None
    return path


def mentions() -> list[Mention]:
    found: set[Mention] = set()
    for document in DOCUMENTS:
        text = document.read_text(encoding="utf-8")
        name = document.relative_to(ROOT).as_posix()
        for match in CURL.finditer(text):
            probe = _probe(match.group(2))
            if probe is not None:
                found.add(Mention(name, match.group(1).upper(), match.group(2), probe))
        for span in SPAN.findall(FENCE.sub("", text)):
            with_method = METHOD_PATH.match(span)
            method, path = (with_method.group(1), with_method.group(2)) if with_method else (None, span)
            if not path.startswith("/") or " " in path:
                continue
            probe = _probe(path)
            if probe is not None:
                found.add(Mention(name, method, path, probe))
    return sorted(found, key=lambda m: (m.document, m.path, m.method or ""))


@pytest.fixture(scope="module")
def routes(tmp_path_factory: pytest.TempPathFactory) -> list[BaseRoute]:
    with pytest.MonkeyPatch.context() as monkeypatch:
        clear_tokenward_env(monkeypatch)
        data = tmp_path_factory.mktemp("docs") / "data"
        init_data_dir(data)
        return list(create_app(Settings.load(data_dir=data)).routes)


def answers(routes: list[BaseRoute], method: str, path: str) -> Match:
    """FULL when a route serves ``method`` on ``path``, PARTIAL when only another method, else NONE."""
    scope: Scope = {"type": "http", "path": path, "method": method, "root_path": "", "headers": []}
    best = Match.NONE
    for route in routes:
        match, _ = route.matches(scope)
        if match == Match.FULL:
            return match
        if match == Match.PARTIAL:
            best = match
    return best


def test_the_docs_name_paths() -> None:
    found = mentions()
    # The extractor must see what the docs really say, or this module checks nothing.
    assert len(found) > 40
    assert Mention("README.md", "DELETE", "/api/session", "/api/session") in found
    assert any(m.path.startswith("/api/captcha/qr.png") for m in found if m.document == "docs/protocol.md")


@pytest.mark.parametrize("mention", mentions(), ids=lambda m: f"{m.document}:{m.method or 'ANY'} {m.path}")
def test_documented_path_is_served(routes: list[BaseRoute], mention: Mention) -> None:
    if mention.method is not None:
        assert answers(routes, mention.method, mention.probe) == Match.FULL, (
            f"{mention.document} names {mention.method} {mention.path}, which the app does not serve"
        )
        return
    served = [method for method in METHODS if answers(routes, method, mention.probe) == Match.FULL]
    assert served, f"{mention.document} names {mention.path}, which the app does not serve (404)"
    if "GET" not in served:
        # A bare path reads as "GET it"; one that has no GET must be named with its method in the
        # same document (the README once listed /api/session, which only answers DELETE).
        named = [m for m in mentions() if m.document == mention.document and m.probe == mention.probe and m.method]
        assert named, f"{mention.document} names {mention.path} without a method, but it only answers {served}"


def test_the_check_catches_a_wrong_path(routes: list[BaseRoute]) -> None:
    assert answers(routes, "GET", "/api/captcha/x1/qr.png") == Match.NONE
    assert answers(routes, "GET", "/api/session") == Match.PARTIAL
    assert answers(routes, "DELETE", "/api/session") == Match.FULL
