"""`tokenward config save|get|status|prune|keygen`: the shared config bundle in S3.

``save`` is the original's ``--saveconfig`` and ``get`` its ``--getconfig``; both are also
accepted as root options.
"""

from __future__ import annotations

import asyncio
import getpass
import hashlib
import socket
import sys
import time

import typer

from tokenward.cli._common import fail, load_settings
from tokenward.configsync import (
    FILES,
    ConfigKey,
    Manifest,
    fetch_bundle,
    manifest_name,
    mirror_bundle,
    open_bundle,
    save_bundle,
)
from tokenward.configsync.stores import cache_store, config_key, require_remote
from tokenward.datadir import DataDir, check_secret_file, load_server_name, write_private
from tokenward.errors import BundleError, PolicyError
from tokenward.policy import Policy, build_policy, read_sources
from tokenward.policy.diff import PolicyDiff, diff_policies, flip_scope
from tokenward.policy.engine import MatcherCache
from tokenward.policy.patterns import Dialect
from tokenward.policy.probes import generate_probes
from tokenward.settings import Settings
from tokenward.storage.blobs import BlobStore

__all__ = ["app", "run_get", "run_save"]

app = typer.Typer(
    no_args_is_help=True,
    help="Share the master configuration through S3: policies, client IDs, and the sealed time code.",
)


def _read_local(data_dir: DataDir) -> dict[str, bytes | None]:
    files: dict[str, bytes | None] = {}
    for spec in FILES:
        path = data_dir.path / spec.filename
        if not path.exists():
            files[spec.kind] = None
            continue
        if spec.secret:
            check_secret_file(path)  # never upload from a file others could have read or replaced
        files[spec.kind] = path.read_bytes()
    return files


def _saved_by() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def _warn(message: str) -> None:
    typer.secho(f"warning: {message}", err=True, fg=typer.colors.YELLOW)


def _dialect_line(manifest: Manifest, dialect: str) -> str:
    """The bundle's policy dialect as ``get`` and ``status`` print it."""
    saved = manifest.policy_dialect
    if saved is None:
        return f"Policy dialect: not recorded in the bundle (read as {dialect}, this machine's)"
    if saved == dialect:
        return f"Policy dialect: {saved} (same as this machine)"
    return f"Policy dialect: {saved} in the bundle, {dialect} on this machine (TOKENWARD_POLICY_DIALECT) - MISMATCH"


def _warn_dialect(manifest: Manifest, dialect: str) -> bool:
    """Warn when the bundle was saved under another dialect than this machine's; True if it was."""
    saved = manifest.policy_dialect
    if saved is None or saved == dialect:
        return False
    _warn(
        f"bundle v{manifest.version} uses policy dialect {saved} but TOKENWARD_POLICY_DIALECT is {dialect} here: "
        f"its rows mean something else in {dialect}, and `tokenward serve` refuses such a bundle "
        f"(policy_dialect_mismatch); set TOKENWARD_POLICY_DIALECT={saved} on this machine"
    )
    return True


async def _current_manifest(store: BlobStore, server: str) -> Manifest | None:
    """The manifest now in ``store`` (None when absent or damaged: ``save`` replaces it either way)."""
    blob = await store.get(manifest_name(server))
    if blob is None:
        return None
    try:
        return Manifest.parse(blob.data, server=server)
    except BundleError:
        return None


#: Rows of the diff printed before a save; ``tokenward policy diff`` shows them all.
_DIFF_GROUPS = 10


def _is_terminal() -> bool:
    return sys.stdin.isatty()


async def _policy_in_force(
    store: BlobStore, server: str, key: ConfigKey | None, dialect: str, matchers: MatcherCache
) -> Policy | str | None:
    """The bundle's policy (None: no bundle yet) or a sentence saying why it cannot be compared."""
    try:
        fetched = await fetch_bundle(store, server=server)
        if fetched is None:
            return None
        contents = open_bundle(fetched, key=key)
        saved = fetched.manifest.policy_dialect or dialect
        chosen: Dialect = "compat" if saved == "compat" else "glob"
        return build_policy(contents.policy_sources, dialect=chosen, matchers=matchers)
    except (BundleError, PolicyError) as exc:  # a store that fails stops the save itself
        return f"the bundle in force cannot be compared ({exc.detail})"


def _diff_before_save(
    settings: Settings, data_dir: DataDir, in_force: Policy | str | None, matchers: MatcherCache
) -> PolicyDiff | None:
    """Build the local policy (refusing one that does not load) and diff it against the bundle's."""
    try:
        local = build_policy(read_sources(data_dir.path), dialect=settings.policy_dialect, matchers=matchers)
    except PolicyError as exc:
        raise fail(f"the policy in {data_dir.path} does not load, nothing saved: {exc.detail}") from None
    if isinstance(in_force, str):
        _warn(in_force)
        return None
    if in_force is None:
        typer.echo("No bundle in force yet: every decision is new.")
        return None
    probes = generate_probes(in_force, local, objects=flip_scope(in_force, local))
    return diff_policies(in_force, local, probes, examples=2)


def _print_diff(result: PolicyDiff) -> None:
    from tokenward.cli.policy import render_diff

    lines = render_diff(result)
    shown: list[str] = []
    blocks = 0
    for line in lines:
        if line == "":
            blocks += 1
            if blocks > _DIFF_GROUPS:
                break
        shown.append(line)
    for line in shown:
        typer.echo(line)
    if len(result.groups) > _DIFF_GROUPS:
        typer.echo(f"... and {len(result.groups) - _DIFF_GROUPS} more row(s): `tokenward policy diff` shows them all")


def run_save(*, seal_policies: bool = False, settings: Settings | None = None, yes: bool = False) -> None:
    """Show what the local policy flips against the bundle in force, confirm on a terminal, upload."""
    settings = settings or load_settings()
    data_dir = DataDir(settings.data_dir)
    server = load_server_name(settings, data_dir)
    key = config_key(settings)
    store = require_remote(settings)

    async def go() -> None:
        try:
            matchers: MatcherCache = {}  # both sides share most patterns: compile each once
            in_force = await _policy_in_force(store, server, key, settings.policy_dialect, matchers)
            result = _diff_before_save(settings, data_dir, in_force, matchers)
            if result is not None:
                _print_diff(result)
            if not yes and _is_terminal():
                flips = "not compared" if result is None else f"{result.flips} decision(s) flip"
                if not typer.confirm(f"Save this configuration for {server} ({flips})?", default=False):
                    raise fail("nothing saved", code=1)
            previous = await _current_manifest(store, server)
            manifest, lines = await save_bundle(
                store,
                server=server,
                files=_read_local(data_dir),
                key=key,
                saved_by=_saved_by(),
                now=time.time(),
                seal_policies=seal_policies,
                settings={"policy_dialect": settings.policy_dialect},
            )
        finally:
            await store.close()
        for line in lines:
            typer.echo(line.render())
        typer.echo(f"Bundle v{manifest.version} ({manifest.digest[:12]}) saved to {store.location} for {server}.")
        old = previous.policy_dialect if previous is not None else None
        if previous is not None and old is not None and old != settings.policy_dialect:
            _warn(
                f"bundle v{previous.version} used policy dialect {old}; v{manifest.version} is saved with "
                f"{settings.policy_dialect} (TOKENWARD_POLICY_DIALECT here): instances running {old} refuse it "
                f"(policy_dialect_mismatch) and keep serving the bundle they have until they run "
                f"{settings.policy_dialect}"
            )

    asyncio.run(go())


def run_get(*, settings: Settings | None = None) -> None:
    """Download and verify the bundle, write its files into the data dir and print one line per file."""
    settings = settings or load_settings()
    data_dir = DataDir(settings.data_dir)
    server = load_server_name(settings, data_dir)
    key = config_key(settings)
    store = require_remote(settings)
    cache = cache_store(data_dir.path)

    async def go() -> None:
        try:
            fetched = await fetch_bundle(store, server=server)
            if fetched is None:
                raise fail(f"no config bundle for {server} in {store.location}: run `tokenward config save` first")
            contents = open_bundle(fetched, key=key)
            data_dir.create()
            data_dir.remember_server_name(server)  # later commands here work without TOKENWARD_SERVER_NAME
            for spec in FILES:
                if spec.filename in contents.withheld:
                    typer.echo(
                        f"- {spec.label} Could Not Be Downloaded - Skipping File ({contents.withheld[spec.filename]})"
                    )
                    continue
                data = contents.files.get(spec.filename)
                if data is None:
                    typer.echo(f"- {spec.label} Not In The Bundle - Skipping File")
                    continue
                path = data_dir.path / spec.filename
                if spec.kind == "timecode" and path.exists() and path.read_bytes() != data:
                    data_dir.backup_timecode(now=time.time())
                write_private(path, data)
                typer.echo(f"- {spec.label} Downloaded Successfully.")
            await mirror_bundle(fetched, cache)
        finally:
            await store.close()
        m = fetched.manifest
        typer.echo(
            f"Bundle v{m.version} ({m.digest[:12]}) saved by {m.saved_by} at {m.saved_at}: now in {data_dir.path}."
        )
        typer.echo(_dialect_line(m, settings.policy_dialect))
        _warn_dialect(m, settings.policy_dialect)

    asyncio.run(go())


@app.command("save")
def save(
    seal_policies: bool = typer.Option(
        False, "--seal-policies", help="Seal the policy files too (every instance then needs TOKENWARD_CONFIG_KEY)."
    ),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation on a terminal."),
) -> None:
    """Save the data dir's policies, client IDs and time code to S3 (the time code only sealed).

    First prints the decisions the local policy flips against the bundle in force (as
    `tokenward policy diff`) and, on a terminal, asks before saving; a policy that does not load
    is never saved.
    """
    run_save(seal_policies=seal_policies, yes=yes)


@app.command("get")
def get() -> None:
    """Download the bundle from S3 into the data dir (every object verified first)."""
    run_get()


@app.command("status")
def status() -> None:
    """Compare the data dir and policy dialect with the bundle in S3 and the last-known-good copy (exit 2: differs)."""
    settings = load_settings()
    data_dir = DataDir(settings.data_dir)
    server = load_server_name(settings, data_dir)
    key = config_key(settings)
    store = require_remote(settings)
    cache = cache_store(data_dir.path)

    async def go() -> int:
        try:
            fetched = await fetch_bundle(store, server=server)
        finally:
            await store.close()
        cached = await fetch_bundle(cache, server=server)
        if fetched is None:
            typer.echo(f"No bundle for {server} in {store.location}.")
            return 1
        m = fetched.manifest
        typer.echo(f"Remote: bundle v{m.version} ({m.digest[:12]}) saved by {m.saved_by} at {m.saved_at}")
        typer.echo(_dialect_line(m, settings.policy_dialect))
        mismatch = _warn_dialect(m, settings.policy_dialect)
        if cached is None:
            typer.echo("Last-known-good copy: none")
        else:
            same = "same" if cached.manifest.digest == m.digest else "older"
            typer.echo(f"Last-known-good copy: v{cached.manifest.version} ({same})")
        contents = open_bundle(fetched, key=key)
        differs = 0
        for spec in FILES:
            path = data_dir.path / spec.filename
            local = path.read_bytes() if path.exists() else None
            if spec.filename in contents.withheld:
                state = "sealed (set TOKENWARD_CONFIG_KEY to compare)"
            else:
                remote = contents.files.get(spec.filename)
                if local is None and remote is None:
                    continue
                if remote is None:
                    state = "only local"
                elif local is None:
                    state = "only remote"
                else:
                    equal = hashlib.sha256(local).digest() == hashlib.sha256(remote).digest()
                    state = "same" if equal else "differs"
                differs += state != "same"
            typer.echo(f"  {spec.filename:<24} {state}")
        return 0 if differs == 0 and not mismatch else 2

    code = asyncio.run(go())
    if code:
        raise typer.Exit(code)


@app.command("prune")
def prune(
    yes: bool = typer.Option(False, "--yes", help="Delete them; without it, only list what would be deleted."),
) -> None:
    """Delete this server's bundle objects that the current manifest does not name (old versions).

    Run it when nobody is saving: a save uploads its objects before its manifest, and pruning in
    between would delete objects the new manifest is about to name.
    """
    from tokenward.configsync.manifest import unreferenced_objects

    settings = load_settings()
    data_dir = DataDir(settings.data_dir)
    server = load_server_name(settings, data_dir)
    store = require_remote(settings)

    async def go() -> int:
        try:
            fetched = await fetch_bundle(store, server=server)
            if fetched is None:
                typer.echo(f"No bundle for {server} in {store.location}: nothing to compare with, nothing pruned.")
                return 1
            names = unreferenced_objects(await store.list(server + "_"), fetched.manifest)
            for name in names:
                if yes:
                    await store.delete(name)
                typer.echo(f"- {name} {'deleted' if yes else 'unreferenced'}")
        finally:
            await store.close()
        verb = "Deleted" if yes else "Would delete (run with --yes)"
        typer.echo(f"{verb} {len(names)} object(s) not named by bundle v{fetched.manifest.version}.")
        return 0

    code = asyncio.run(go())
    if code:
        raise typer.Exit(code)


@app.command("keygen")
def keygen() -> None:
    """Print a new TOKENWARD_CONFIG_KEY (32 random bytes, base64url). Give every instance the same one."""
    typer.echo(ConfigKey.generate())
