"""`tokenward policy`: write samples, lint, check a request, show the policy in force, diff two policies."""

from __future__ import annotations

import asyncio
import itertools
import json
import textwrap
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import typer

from tokenward.cli._common import GuardedGroup, error_exit, fail, load_settings
from tokenward.errorcodes import ErrorCode
from tokenward.errors import PolicyError, TokenwardError
from tokenward.policy import (
    CSV_FILES,
    POLICY_FILES,
    Policy,
    build_policy,
    explain,
    lint,
    load_policy,
    parse_segments,
    read_sources,
    write_samples,
)
from tokenward.policy.diff import PolicyDiff, diff_policies, flip_scope
from tokenward.policy.engine import MatcherCache
from tokenward.policy.files import MAX_FILE_BYTES
from tokenward.policy.lint import group_notes
from tokenward.policy.patterns import Dialect
from tokenward.policy.probes import Probe, generate_probes, parse_requests

app = typer.Typer(
    cls=GuardedGroup,
    no_args_is_help=True,
    help="Policy files: write commented samples, lint them, check a request and see why (docs/policies.md).",
)

_DIALECT = typer.Option(None, "--dialect", help="glob or compat (default: the policy_dialect setting).")
_JSON = typer.Option(False, "--json", help="Print JSON instead of text.")


def _settings(dialect: str | None) -> tuple[Path, Dialect, Any]:
    settings = load_settings(policy_dialect=dialect)
    return settings.data_dir, settings.policy_dialect, settings


@app.command()
def samples(
    server_name: str | None = typer.Option(None, "--server-name", help="Replace mytoken.server in the samples."),
    force: bool = typer.Option(False, "--force", help="Overwrite existing policy files."),
) -> None:
    """Write the seven commented sample policy files into the data dir (existing files are kept)."""
    data_dir, _, settings = _settings(None)
    written = write_samples(data_dir, server_name=server_name or settings.server_name, overwrite=force)
    for path in written:
        typer.echo(f"wrote {path}")
    if not written:
        typer.echo(f"all policy files already exist in {data_dir} (use --force to overwrite)")


@app.command("lint")
def lint_command(
    dialect: str | None = _DIALECT,
    as_json: bool = _JSON,
    show_all: bool = typer.Option(False, "--all", help="List every note instead of a count and a few examples."),
    strict: bool = typer.Option(False, "--strict", help="Notes fail the lint too (exit 1), not only problems."),
) -> None:
    """Report rows that never match, repeat, or use unknown actions; note rows the dialects read differently.

    Problems are listed one per line. Notes (dialect-differs, unescaped-dot) are explained once,
    counted, and shown by a few examples (--all lists them). Exit status: 0 no problems (notes
    allowed), 1 problems (or notes with --strict), 2 the policy does not load.
    """
    data_dir, chosen, _ = _settings(dialect)
    findings = lint(read_sources(data_dir), dialect=chosen)
    problems = [finding for finding in findings if finding.severity == "problem"]
    notes = [finding for finding in findings if finding.severity == "note"]
    if as_json:
        typer.echo(json.dumps([finding.to_json() for finding in findings], indent=2))
    else:
        for finding in problems:
            typer.echo(str(finding))
        for index, group in enumerate(group_notes(notes)):
            if problems or index:
                typer.echo("")
            typer.echo(f"{group.code}: {len(group.findings)} patterns in {group.rows} rows (note)")
            typer.echo(textwrap.fill(group.explanation, width=100, initial_indent="  ", subsequent_indent="  "))
            shown = group.findings if show_all else group.examples()
            for finding in shown:
                typer.echo(f"  {finding}")
            if len(shown) < len(group.findings):
                typer.echo(f"  … and {len(group.findings) - len(shown)} more (--all lists them, --json for tools)")
        typer.echo(
            f"{len(problems)} problem(s), {len(notes)} note(s) in {data_dir} ({chosen} dialect)",
            err=True,
        )
    if any(finding.code == "load-error" for finding in findings):
        raise typer.Exit(2)
    if problems or (strict and notes):
        raise typer.Exit(1)


@app.command()
def check(
    sub: str | None = typer.Argument(None, help="Subject: e-mail, resource name or app hash."),
    dom: str | None = typer.Argument(None, help="Domain: server name, destination, host or app hash."),
    obj: str | None = typer.Argument(None, help="Object: client ID, CAPTCHA, server name or TOKENWARD."),
    act: str | None = typer.Argument(
        None, help="Action: login, ask, poke, clientaccess, enable, systemlogin, admin, a scope."
    ),
    file: str | None = typer.Option(None, "--file", help=f"Policy file to ask (default: by action). {CSV_FILES}"),
    as_verify: str | None = typer.Option(
        None,
        "--as-verify",
        metavar="URL",
        help="Ask the question /verify asks for a request to URL (domain: the host without its port).",
    ),
    user: str | None = typer.Option(None, "--user", help="With --as-verify: the authenticated user (subject)."),
    method: str = typer.Option("GET", "--method", help="With --as-verify: the request's HTTP method."),
    config_token: str | None = typer.Option(
        None, "--config-token", help="With --as-verify: the config token whose policy block /verify applies."
    ),
    object_: str | None = typer.Option(
        None, "--object", help="With --as-verify and no --config-token: the policy block's object."
    ),
    dialect: str | None = _DIALECT,
    as_json: bool = _JSON,
) -> None:
    """Decide one request and explain it: allow/deny, deciding rows with file:line, near misses.

    Give SUB DOM OBJ ACT, or --as-verify URL --user SUBJECT with --config-token TOKEN (or --object
    OBJ) to ask exactly what /verify asks for that request. Exit status: 0 allow, 1 deny, 2 bad input.
    """
    positional = [value for value in (sub, dom, obj, act) if value is not None]
    if as_verify is not None:
        if positional:
            raise fail("give SUB DOM OBJ ACT or --as-verify URL, not both", 2)
        if file is not None:
            raise fail("--as-verify picks the file /verify asks (userpolicy.csv or resourcepolicy.csv); drop --file", 2)
        sub, dom, obj, act, file = _verify_question(as_verify, user, method, config_token, object_)
    if sub is None or dom is None or obj is None or act is None:
        raise fail("give the four parts of the question: SUB DOM OBJ ACT (or --as-verify URL --user SUBJECT)", 2)
    data_dir, chosen, settings = _settings(dialect)
    policy = load_policy(data_dir, dialect=chosen, segments=parse_segments(settings.policy_segments))
    result = explain(policy, sub, dom, obj, act, file=file)
    if as_json:
        typer.echo(json.dumps(result.to_json(), indent=2))
    else:
        colour = typer.colors.GREEN if result.allowed else typer.colors.RED
        typer.secho(f"{result.decision.upper()}  {sub}, {dom}, {obj}, {act}  ({result.file})", fg=colour, bold=True)
        typer.echo(f"  why: {result.reason}")
        for rule in result.allowed_by:
            typer.echo(f"  allow  {rule.where}  p, {', '.join(rule.values())}")
        for rule in result.denied_by:
            typer.echo(f"  deny   {rule.where}  p, {', '.join(rule.values())}")
        for miss in result.near_misses:
            typer.echo(f"  near   {miss.rule.where}  p, {', '.join(miss.rule.values())}  ({miss.field} differs)")
        typer.echo(f"  policy {policy.short_version} ({policy.dialect})")
    if not result.allowed:
        raise typer.Exit(1)


def _verify_question(
    url: str, user: str | None, method: str, config_token: str | None, object_: str | None
) -> tuple[str, str, str, str, str]:
    """(sub, dom, obj, act, file) as /verify would ask them; exit 2 with a sentence for bad input."""
    from tokenward.datadir import DataDir
    from tokenward.forwardauth.config_token import decode_token
    from tokenward.forwardauth.plugins.base import UserInfo
    from tokenward.forwardauth.policy_question import request_for_url, verify_question
    from tokenward.forwardauth.schema import PolicyBlock

    if not user:
        raise fail("--as-verify needs --user SUBJECT (the user /verify would have authenticated)", 2)
    if (config_token is None) == (object_ is None):
        raise fail("--as-verify needs --config-token TOKEN (its policy block) or --object OBJ, one of them", 2)
    try:
        info = request_for_url(url, method)
        if config_token is not None:
            keyring = DataDir(load_settings().data_dir).read_timecodes().keyring()
            document = decode_token(config_token.strip(), keyring, now=time.time()).document
            block = document.tokenward
            if block.pointer is not None:
                store_id, token_id = block.pointer
                raise fail(
                    f"this is a pointer token (store {store_id!r}, id {token_id!r}): "
                    "give the config token it points to",
                    2,
                )
            if block.policy is None:
                raise fail("this config token has no policy block: /verify asks no policy question for it", 2)
            spec = block.policy
        else:
            spec = PolicyBlock(object=object_ or "")
        question = verify_question(spec, UserInfo(sub=user, email=user if "@" in user else ""), info)
    except TokenwardError as exc:
        raise error_exit(exc, 2) from None
    return question.subject, question.domain, question.object, question.action, question.file


@app.command()
def show(dialect: str | None = _DIALECT, as_json: bool = _JSON) -> None:
    """Load the policy as the server would and print its version, dialect and row counts."""
    data_dir, chosen, settings = _settings(dialect)
    policy = load_policy(data_dir, dialect=chosen, segments=parse_segments(settings.policy_segments))
    summary = policy.summary()
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    typer.echo(f"version  {policy.version}")
    typer.echo(f"dialect  {policy.dialect}")
    typer.echo(f"segments {', '.join(sorted(policy.segments))}")
    for name, engine in policy.engines.items():
        state = "" if name in policy.present else "  (absent)"
        slow = "" if engine.fast else "  [slow path: pycasbin]"
        typer.echo(f"  {name:24} {len(engine.rules):>9} rows{state}{slow}")


_SIDE_HELP = (
    "A data dir, a policy file named like one of the seven (userpolicy.csv), NAME=PATH for a file "
    "named otherwise, or several files separated by commas."
)


@app.command("diff")
def diff_command(
    old: str = typer.Argument(..., help=f"The policy in force. {_SIDE_HELP}"),
    new: str = typer.Argument(..., help=f"The changed policy. {_SIDE_HELP}"),
    requests: list[Path] | None = typer.Option(
        None, "--requests", help="A file of questions: JSON lines or 'sub, dom, obj, act' rows (repeatable)."
    ),
    from_log: bool = typer.Option(
        False,
        "--from-log",
        help="Also ask the decisions recorded by the decision log's sink (the database, or S3 with "
        "TOKENWARD_DECISION_LOG_SINK=s3), newest first.",
    ),
    log_limit: int = typer.Option(100_000, "--log-limit", min=1, max=5_000_000, help="Most recorded decisions read."),
    generate: bool = typer.Option(
        True, "--generate/--no-generate", help="Also ask questions generated from every row of both sides."
    ),
    dialect: str | None = typer.Option(None, "--dialect", help="glob or compat for both sides (default: setting)."),
    dialect_from: str | None = typer.Option(None, "--dialect-from", help="Dialect of OLD (default: --dialect)."),
    dialect_to: str | None = typer.Option(None, "--dialect-to", help="Dialect of NEW (default: --dialect)."),
    examples: int = typer.Option(3, "--examples", min=0, max=1000, help="Example questions shown per row."),
    as_json: bool = _JSON,
) -> None:
    """Show which decisions flip between two policies, grouped by the row responsible.

    Exit status: 0 nothing flips, 1 something flips, 2 error (for a policy repository's CI).
    """
    try:
        recorded = _recorded(log_limit) if from_log else []
        result = run_diff(
            old,
            new,
            recorded=recorded,
            requests=requests or [],
            generate=generate,
            dialects=(dialect_from or dialect, dialect_to or dialect),
            examples=examples,
        )
    except TokenwardError as exc:
        raise error_exit(exc, 2) from None
    if as_json:
        typer.echo(json.dumps(result.to_json(), indent=2))
    else:
        for line in render_diff(result):
            typer.echo(line)
    if result.flips:
        raise typer.Exit(1)


def _recorded(limit: int) -> list[Probe]:
    """The newest ``limit`` questions of the decision log's sink: the S3 bucket with
    TOKENWARD_DECISION_LOG_SINK=s3, otherwise the database's ``decision_log`` table."""
    from tokenward.storage import Database
    from tokenward.storage.decisions import BlobDecisionSink, SqlDecisionSink

    settings = load_settings()

    async def read() -> list[Probe]:
        if settings.decision_log_sink == "s3":
            from tokenward.configsync.stores import require_remote
            from tokenward.datadir import DataDir, load_server_name

            server = load_server_name(settings, DataDir(settings.data_dir))
            sink = BlobDecisionSink(require_remote(settings), server=server, instance="cli", retention_seconds=0)
            try:
                return [record.probe() for record in await sink.recent(limit)]
            finally:
                await sink.close()
        async with Database.connect(settings.database_url_or_default) as db:
            if not await db.is_current():
                raise PolicyError(
                    "the database schema is not current (no decision_log table?): run `tokenward db upgrade`",
                    code=ErrorCode.DECISION_LOG_UNAVAILABLE,
                )
            records = await SqlDecisionSink(db, retention_seconds=0).recent(limit)
        return [record.probe() for record in records]

    return asyncio.run(read())


def run_diff(
    old: str,
    new: str,
    *,
    recorded: list[Probe] | None = None,
    requests: list[Path],
    generate: bool,
    dialects: tuple[str | None, str | None],
    examples: int,
) -> PolicyDiff:
    """Read both sides and the question files, build both policies, diff them."""
    default: str | None = None
    if None in dialects:
        default = load_settings().policy_dialect
    old_sources, new_sources = read_sides(old, new)
    old_dialect, new_dialect = (_dialect(d or default) for d in dialects)
    matchers: MatcherCache = {}  # the two sides share most patterns: compile each once
    old_policy = _build_side("OLD", old, old_sources, old_dialect, matchers)
    new_policy = _build_side("NEW", new, new_sources, new_dialect, matchers)
    probes: list[Probe] = list(recorded or [])
    for path in requests:
        probes.extend(parse_requests(_read_text(path), source=str(path)))
    questions: Iterable[Probe] = probes
    if generate:
        scope = flip_scope(old_policy, new_policy)  # no question outside it can flip
        questions = itertools.chain(probes, generate_probes(old_policy, new_policy, objects=scope))
    return diff_policies(old_policy, new_policy, questions, examples=examples)


def _dialect(value: str | None) -> Dialect:
    if value == "glob":
        return "glob"
    if value == "compat":
        return "compat"
    raise PolicyError(f"unknown policy dialect {value!r}; use glob or compat", code=ErrorCode.POLICY_DIALECT_UNKNOWN)


def _build_side(label: str, spec: str, sources: dict[str, bytes], dialect: Dialect, matchers: MatcherCache) -> Policy:
    try:
        return build_policy(sources, dialect=dialect, matchers=matchers)
    except PolicyError as exc:
        raise PolicyError(f"{label} ({spec}): {exc.detail}", code=exc.code) from None


def _read_text(path: Path) -> str:
    try:
        data = _read_bytes(path)
        return data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError:
        raise PolicyError(f"{path}: not valid UTF-8", code=ErrorCode.POLICY_REQUESTS_INVALID) from None


def _read_bytes(path: Path) -> bytes:
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise PolicyError(f"{path}: cannot read ({exc.strerror})", code=ErrorCode.POLICY_FILE_UNREADABLE) from None
    if len(data) > MAX_FILE_BYTES:
        raise PolicyError(f"{path}: file is larger than {MAX_FILE_BYTES} bytes", code=ErrorCode.POLICY_FILE_TOO_LARGE)
    return data


def _read_side(spec: str) -> tuple[dict[str, bytes], bool]:
    """The files of one side and whether it is a whole data dir."""
    path = Path(spec)
    if "," not in spec and path.is_dir():
        sources = read_sources(path)
        if not sources:
            raise PolicyError(f"{spec}: no policy files in this directory", code=ErrorCode.POLICY_FILE_UNREADABLE)
        return sources, True
    sources = {}
    for item in spec.split(","):
        name, sep, target = item.strip().partition("=")
        if not sep:
            name, target = Path(item.strip()).name, item.strip()
        if name not in POLICY_FILES:
            raise PolicyError(
                f"{item.strip()}: not a policy file name; write NAME=PATH with NAME one of {', '.join(POLICY_FILES)}",
                code=ErrorCode.POLICY_FILE_UNKNOWN,
            )
        if name in sources:
            raise PolicyError(f"{spec}: {name} is given twice", code=ErrorCode.POLICY_FILE_UNKNOWN)
        sources[name] = _read_bytes(Path(target))
    return sources, False


def read_sides(old: str, new: str) -> tuple[dict[str, bytes], dict[str, bytes]]:
    """Both sides' files; a side given as files takes the files it does not name from a dir side."""
    old_sources, old_dir = _read_side(old)
    new_sources, new_dir = _read_side(new)
    if old_dir and not new_dir:
        new_sources = {**old_sources, **new_sources}
    elif new_dir and not old_dir:
        old_sources = {**new_sources, **old_sources}
    return old_sources, new_sources


def render_diff(result: PolicyDiff) -> list[str]:
    """The text report: a summary line, the row changes per file, then one block per row."""
    old = f"{result.old_version[:12]} ({result.old_dialect})"
    new = f"{result.new_version[:12]} ({result.new_dialect})"
    lines = [
        f"{result.flips} decision(s) flip of {result.questions} question(s) "
        f"({result.evaluated} answered by both)  old {old} -> new {new}"
    ]
    for name, changes in result.rows.items():
        if changes.added or changes.removed:
            lines.append(f"  {name}: +{changes.added} -{changes.removed} row(s)")
    for group in result.groups:
        where = f"{group.side}:{group.rule.where}" if group.rule is not None else group.file
        lines.append("")
        lines.append(f"{group.change:<8} {where}  {group.row}".rstrip())
        counts = []
        if group.allow_to_deny:
            counts.append(f"{group.allow_to_deny} allow -> deny")
        if group.deny_to_allow:
            counts.append(f"{group.deny_to_allow} deny -> allow")
        lines.append(f"         {group.reason}: {', '.join(counts)}")
        for flip in group.examples:
            lines.append(f"         e.g. {flip.probe.text()}: {flip.old} -> {flip.new}")
    return lines
