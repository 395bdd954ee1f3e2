"""`tokenward policy`: write samples, lint, check a request, show the policy in force."""

from __future__ import annotations

import json
import textwrap
import time
from pathlib import Path
from typing import Any

import typer

from tokenward.cli._common import GuardedGroup, fail, load_settings
from tokenward.errors import TokenwardError
from tokenward.policy import (
    CSV_FILES,
    explain,
    lint,
    load_policy,
    parse_segments,
    read_sources,
    write_samples,
)
from tokenward.policy.lint import group_notes
from tokenward.policy.patterns import Dialect

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
        raise fail(exc.detail, 2) from None
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
