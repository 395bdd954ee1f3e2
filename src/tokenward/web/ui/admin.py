"""Admin pages: instance status, policy tester, policy what-if, lint findings, client apps, audit events.

Only for subjects the policy makes admins (``p, <email>, <server>, TOKENWARD, admin``); anyone
else gets the 403 page. Read-only pages take GET parameters; the policy tester posts a form
(with its CSRF token) because it is a form like every other.
"""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tokenward.errorcodes import ErrorCode
from tokenward.errors import BadRequest, Forbidden, TokenwardError
from tokenward.identity.apps import load_serving_registry
from tokenward.policy import CSV_FILES, POLICY_FILES, Finding, explain, lint, read_sources
from tokenward.policy.diff import what_if
from tokenward.policy.lint import group_notes
from tokenward.web.state import get_audit, get_runtime
from tokenward.web.ui.audit_filters import DEFAULT_PAGE, parse_filters
from tokenward.web.ui.pages import admin_of, signed_in, to_login
from tokenward.web.ui.render import error_page, read_form, render

__all__ = ["routes"]


async def _admin(request: Request) -> tuple[object, Response | None]:
    user = await signed_in(request)
    if user is None:
        return None, to_login(request)
    if not admin_of(request, user):
        runtime = get_runtime(request)
        exc = Forbidden(
            f"{user.subject} is not an admin of {runtime.server_name}; an admin page needs the policy row "
            f"'p, {user.subject}, {runtime.server_name}, TOKENWARD, admin'",
            code=ErrorCode.NOT_ADMIN,
        )
        return user, error_page(request, exc, user=user, admin=False)
    return user, None


async def status(request: Request) -> Response:
    user, refused = await _admin(request)
    if refused is not None:
        return refused
    runtime = get_runtime(request)
    holder = runtime.policy
    policy = holder.policy.summary() if holder.loaded else None
    sync = runtime.config_sync.status() if runtime.config_sync is not None else None
    return render(
        request,
        "admin_status.html",
        user=user,
        admin=True,
        policy=policy,
        reloads=holder.reloads if holder is not None else 0,
        last_error=holder.last_error.detail if holder is not None and holder.last_error else None,
        sync=sync,
        settings=runtime.settings,
    )


async def policy_tester(request: Request) -> Response:
    user, refused = await _admin(request)
    if refused is not None:
        return refused
    result = None
    fields = {"sub": "", "dom": get_runtime(request).server_name, "obj": "", "act": "login", "file": ""}
    status_code = 200
    if request.method == "POST":
        form = await read_form(request)
        fields = {name: form.get(name, max_length=320).strip() for name in fields}
        holder = get_runtime(request).policy
        try:
            if any(not fields[n] for n in ("sub", "dom", "obj", "act")):
                raise BadRequest("fill in subject, domain, object and action", code=ErrorCode.POLICY_CHECK_INCOMPLETE)
            if not holder.loaded:
                raise BadRequest("no policy is loaded on this instance", code=ErrorCode.POLICY_NOT_LOADED)
            file = fields["file"] or None
            if file is not None and file not in CSV_FILES:
                raise BadRequest(f"unknown policy file {file!r}", code=ErrorCode.POLICY_FILE_UNKNOWN)
            result = explain(
                holder.policy, fields["sub"], fields["dom"], fields["obj"], fields["act"], file=file
            ).to_json()
        except TokenwardError as exc:
            status_code = 400
            result = {"error": exc.detail}
    return render(
        request,
        "admin_policy.html",
        status=status_code,
        user=user,
        admin=True,
        fields=fields,
        result=result,
        files=sorted(CSV_FILES),
    )


#: Longest file the what-if page takes (the request body limit still applies); bigger: the CLI.
MAX_DIFF_FILE = 4 * 1024 * 1024


async def policy_diff(request: Request) -> Response:
    """Paste or upload a changed policy file; see the decisions it would flip, by responsible row."""
    user, refused = await _admin(request)
    if refused is not None:
        return refused
    fields = {"file": "userpolicy.csv", "content": "", "dialect": ""}
    result = None
    status_code = 200
    if request.method == "POST":
        runtime = get_runtime(request)
        form = await read_form(request, max_bytes=max(runtime.settings.max_body_bytes, 16 * 1024))
        fields = {
            "file": form.get("file", max_length=64),
            "content": form.get("content", max_length=MAX_DIFF_FILE),
            "dialect": form.get("dialect", max_length=16),
        }
        holder = runtime.policy
        try:
            if fields["file"] not in POLICY_FILES:
                raise BadRequest(f"unknown policy file {fields['file']!r}", code=ErrorCode.POLICY_FILE_UNKNOWN)
            if fields["dialect"] not in ("", "glob", "compat"):
                raise BadRequest("the dialect is glob or compat", code=ErrorCode.POLICY_DIALECT_UNKNOWN)
            if not holder.loaded:
                raise BadRequest("no policy is loaded on this instance", code=ErrorCode.POLICY_NOT_LOADED)
            recorded = [r.probe() for r in runtime.decision_log.records()] if runtime.decision_log else []
            diff = await asyncio.to_thread(
                what_if,
                holder.policy,
                {fields["file"]: fields["content"].replace("\r\n", "\n").encode()},
                dialect="compat" if fields["dialect"] == "compat" else "glob" if fields["dialect"] else None,
                recorded=recorded,
                examples=5,
            )
            result = diff.to_json()
        except TokenwardError as exc:
            status_code = 400
            result = {"error": exc.detail}
    return render(
        request,
        "admin_policy_diff.html",
        status=status_code,
        user=user,
        admin=True,
        fields=fields,
        result=result,
        files=POLICY_FILES,
    )


async def lint_page(request: Request) -> Response:
    user, refused = await _admin(request)
    if refused is not None:
        return refused
    holder = get_runtime(request).policy
    found: list[Finding] = []
    problem = None
    if holder is None or holder.data_dir is None:
        problem = "this instance has no policy folder to lint"
    else:
        try:
            sources = await asyncio.to_thread(read_sources, holder.data_dir)
            found = await asyncio.to_thread(lint, sources, dialect=holder.dialect)
        except TokenwardError as exc:
            problem = exc.detail
    dialect = holder.dialect if holder is not None else ""
    # As the CLI: problems one per row; notes (dialect-differs, …) explained once per kind, counted.
    return render(
        request,
        "admin_lint.html",
        user=user,
        admin=True,
        findings=[f.to_json() for f in found if f.severity == "problem"],
        notes=group_notes([f for f in found if f.severity == "note"]),
        problem=problem,
        dialect=dialect,
    )


async def clients(request: Request) -> Response:
    user, refused = await _admin(request)
    if refused is not None:
        return refused
    registry = load_serving_registry(get_runtime(request).settings.data_dir)
    return render(request, "admin_clients.html", user=user, admin=True, apps=registry.apps)


async def audit(request: Request) -> Response:
    user, refused = await _admin(request)
    if refused is not None:
        return refused
    try:
        filters = parse_filters(request.query_params)
    except BadRequest as exc:  # the form shows what is wrong; no query runs
        raw = {name: request.query_params.get(name, "")[:64] for name in ("actor", "action", "since", "until")}
        form = {**raw, "limit": DEFAULT_PAGE}
        return render(
            request,
            "admin_audit.html",
            status=400,
            user=user,
            admin=True,
            events=[],
            filters=form,
            older=None,
            paged=False,
            message=exc.detail,
        )
    found = await get_audit(request).list(
        actor=filters.actor or None,
        action=filters.action or None,
        since=filters.since,
        until=filters.until,
        before=filters.before,
        limit=filters.limit + 1,  # one more tells whether an older page exists
    )
    events = found[: filters.limit]
    older = filters.older_link(events[-1]) if len(found) > filters.limit else None
    return render(
        request,
        "admin_audit.html",
        user=user,
        admin=True,
        events=events,
        filters=filters.form(),
        older=older,
        paged=filters.before is not None,
        message=None,
    )


routes = [
    Route("/admin", status, methods=["GET"]),
    Route("/admin/policy", policy_tester, methods=["GET", "POST"]),
    Route("/admin/policy-diff", policy_diff, methods=["GET", "POST"]),
    Route("/admin/lint", lint_page, methods=["GET"]),
    Route("/admin/clients", clients, methods=["GET"]),
    Route("/admin/audit", audit, methods=["GET"]),
]
