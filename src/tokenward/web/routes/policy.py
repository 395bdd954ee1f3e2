"""Admin policy endpoints: what is in force, why a request is allowed or denied, lint findings,
what a changed file would flip, and the decision log.

Admins only: the caller authenticates through the chain with the management scope and must be
granted ``admin`` on this server's realm by the policy (docs/policies.md).
"""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from tokenward.apptokens import Caller
from tokenward.errorcodes import ErrorCode
from tokenward.errors import NotFound, PolicyError
from tokenward.policy import CSV_FILES, POLICY_FILES, PolicyHolder, explain, lint, read_sources
from tokenward.policy.diff import what_if
from tokenward.runtime import Runtime
from tokenward.web.deps import admin
from tokenward.web.state import get_runtime

__all__ = ["router"]

router = APIRouter(prefix="/api/policy", tags=["policy"])


def _holder(request: Request) -> PolicyHolder:
    holder = get_runtime(request).policy
    if not holder.loaded:
        raise PolicyError("no policy is loaded on this instance", code=ErrorCode.POLICY_NOT_LOADED)
    return holder


Admin = Annotated[Caller, Depends(admin)]


class CheckRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sub: str = Field(min_length=1, max_length=320, description="Subject: an e-mail, a resource, an app hash.")
    dom: str = Field(min_length=1, max_length=320, description="Destination, server or host.")
    obj: str = Field(min_length=1, max_length=320, description="Client ID, CAPTCHA, TOKENWARD, or the server.")
    act: str = Field(min_length=1, max_length=64, description="login, ask, poke, clientaccess, enable, admin, ...")
    file: str | None = Field(
        default=None, description=f"Policy file to ask (default: chosen by action); one of {sorted(CSV_FILES)}."
    )


@router.get("", summary="The policy in force")
async def policy_summary(request: Request, caller: Admin) -> dict[str, Any]:
    holder = _holder(request)
    decisions = get_runtime(request).decision_log
    return {
        **holder.policy.summary(),
        "reloads": holder.reloads,
        "last_reload_error": holder.last_error.detail if holder.last_error else None,
        "decision_log": decisions.stats() if decisions is not None else {"enabled": False},
    }


@router.post("/check", summary="Explain a decision: allow or deny, and the deciding rows with file:line")
async def policy_check(request: Request, body: CheckRequest, caller: Admin) -> dict[str, object]:
    if body.file is not None and body.file not in CSV_FILES:
        raise PolicyError(
            f"unknown policy file {body.file!r}; one of {', '.join(sorted(CSV_FILES))}",
            code=ErrorCode.POLICY_FILE_UNKNOWN,
        )
    return explain(_holder(request).policy, body.sub, body.dom, body.obj, body.act, file=body.file).to_json()


@router.get("/lint", summary="Lint the policy files on disk")
async def policy_lint(request: Request, caller: Admin) -> dict[str, object]:
    holder = _holder(request)
    if holder.data_dir is None:
        raise PolicyError("this instance has no policy folder to lint", code=ErrorCode.POLICY_NOT_LOADED)
    sources = await asyncio.to_thread(read_sources, holder.data_dir)
    findings = await asyncio.to_thread(lint, sources, dialect=holder.dialect)
    return {"dialect": holder.dialect, "findings": [finding.to_json() for finding in findings]}


class DiffRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    files: dict[str, str] = Field(
        default_factory=dict,
        description=f"Changed files by name (one of {list(POLICY_FILES)}) and their whole new text.",
        max_length=len(POLICY_FILES),
    )
    dialect: Literal["glob", "compat"] | None = Field(default=None, description="Another dialect (default: in force).")
    examples: int = Field(default=3, ge=0, le=100, description="Example questions per responsible row.")


def recorded_probes(runtime: Runtime) -> list[Any]:
    """The questions in this instance's decision log buffer (none when the log is off)."""
    if runtime.decision_log is None:
        return []
    return [record.probe() for record in runtime.decision_log.records()]


@router.post("/diff", summary="What a changed policy file would flip: decisions grouped by responsible row")
async def policy_diff(request: Request, body: DiffRequest, caller: Admin) -> dict[str, object]:
    for name in body.files:
        if name not in POLICY_FILES:
            raise PolicyError(
                f"unknown policy file {name!r}; one of {', '.join(POLICY_FILES)}", code=ErrorCode.POLICY_FILE_UNKNOWN
            )
    if not body.files and body.dialect is None:
        raise PolicyError("give at least one changed file or another dialect", code=ErrorCode.POLICY_DIFF_EMPTY)
    runtime = get_runtime(request)
    policy = _holder(request).policy
    changes = {name: text.encode() for name, text in body.files.items()}
    result = await asyncio.to_thread(
        what_if, policy, changes, dialect=body.dialect, recorded=recorded_probes(runtime), examples=body.examples
    )
    return result.to_json()


@router.get(
    "/decisions",
    summary="The decision log of this instance, as JSON lines (oldest first)",
    response_class=Response,
    responses={200: {"content": {"application/x-ndjson": {}}, "description": "One JSON decision per line."}},
)
async def policy_decisions(
    request: Request, caller: Admin, limit: Annotated[int, Query(ge=1, le=1_000_000)] = 10_000
) -> Response:
    log = get_runtime(request).decision_log
    if log is None:
        raise NotFound(
            "the decision log is off on this instance; set TOKENWARD_DECISION_LOG_ENABLED=true",
            code=ErrorCode.DECISION_LOG_DISABLED,
        )
    lines = "".join(json.dumps(record.to_json(), separators=(",", ":")) + "\n" for record in log.records(limit))
    return Response(lines, media_type="application/x-ndjson", headers={"Cache-Control": "no-store"})
