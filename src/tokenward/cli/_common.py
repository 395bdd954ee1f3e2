"""Shared CLI plumbing: settings from global options, the runtime, one-line errors, the command group class."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from typer.core import TyperGroup

from tokenward.errors import TokenwardError

if TYPE_CHECKING:
    from tokenward.runtime import Runtime
    from tokenward.settings import Settings

__all__ = ["DATA_DIR_OPTION", "GuardedGroup", "cli_runtime", "error_exit", "fail", "load_settings"]

# Set by the root command's ``--data-dir``; read by every command through load_settings().
DATA_DIR_OPTION: ContextVar[Path | None] = ContextVar("tokenward_cli_data_dir", default=None)


class GuardedGroup(TyperGroup):
    """Turns a TokenwardError from any command into ``error: <detail>`` on stderr and exit 1."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except TokenwardError as exc:
            raise error_exit(exc) from None
        finally:
            if ctx.parent is None:  # the root's --data-dir lives for one invocation only
                DATA_DIR_OPTION.set(None)


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment/config file, the global ``--data-dir`` option, then ``overrides``."""
    from tokenward.settings import Settings  # here, so that `tokenward --help` does not import pydantic

    return Settings.load(**{"data_dir": DATA_DIR_OPTION.get(), **overrides})


@asynccontextmanager
async def cli_runtime(settings: Settings | None = None, *, migrate: bool = True) -> AsyncIterator[Runtime]:
    """The services a command needs, built as ``serve`` builds them (:func:`tokenward.runtime.open_runtime`, with
    its start-up checks) but without listening for other instances' notices, each service built when the command
    first uses it (``eager=False``); closed when the block ends."""
    from tokenward.runtime import open_runtime

    runtime = await open_runtime(settings or load_settings(), migrate=migrate, listen=False, eager=False)
    try:
        yield runtime
    finally:
        await runtime.close()


def error_exit(exc: TokenwardError, exit_code: int = 1) -> typer.Exit:
    """The CLI's renderer of an error: ``error: <detail>`` on stderr; returns the Exit to raise.

    (The JSON API renders with ``web.errors.json_error``, ``/verify`` with ``web.middleware.hot_error``.)
    """
    return fail(exc.detail, exit_code)


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print ``error: message`` and return the Exit to raise."""
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code)
