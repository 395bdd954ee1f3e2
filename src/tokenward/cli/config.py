"""`tokenward config save|get|status|prune|keygen`: the shared config bundle in S3 (seed 000).

``save`` is the original's ``--saveconfig`` and ``get`` its ``--getconfig``; both are also
accepted as root options.
"""

from __future__ import annotations

import asyncio
import getpass
import hashlib
import socket
import time

import typer

from tokenward.cli._common import fail, load_settings
from tokenward.configsync import FILES, ConfigKey, fetch_bundle, mirror_bundle, open_bundle, save_bundle
from tokenward.configsync.stores import cache_store, config_key, require_remote
from tokenward.datadir import DataDir, check_secret_file, load_server_name, write_private
from tokenward.settings import Settings

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


def run_save(*, seal_policies: bool = False, settings: Settings | None = None) -> None:
    """Upload the data dir's configuration and print one line per file."""
    settings = settings or load_settings()
    data_dir = DataDir(settings.data_dir)
    server = load_server_name(settings, data_dir)
    key = config_key(settings)
    store = require_remote(settings)

    async def go() -> None:
        try:
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

    asyncio.run(go())


@app.command("save")
def save(
    seal_policies: bool = typer.Option(
        False, "--seal-policies", help="Seal the policy files too (every instance then needs TOKENWARD_CONFIG_KEY)."
    ),
) -> None:
    """Save the data dir's policies, client IDs and time code to S3 (the time code only sealed)."""
    run_save(seal_policies=seal_policies)


@app.command("get")
def get() -> None:
    """Download the bundle from S3 into the data dir (every object verified first)."""
    run_get()


@app.command("status")
def status() -> None:
    """Compare the data dir with the bundle in S3 and the last-known-good copy."""
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
        return 0 if differs == 0 else 2

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
