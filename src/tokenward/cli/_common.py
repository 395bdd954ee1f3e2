"""Shared CLI plumbing: settings from global options, one-line errors, the command group class."""

from __future__ import annotations

from typing import Any

import click
import typer
from typer.core import TyperGroup

from tokenward.errors import TokenwardError
from tokenward.settings import Settings

__all__ = ["GuardedGroup", "fail", "load_settings"]


class GuardedGroup(TyperGroup):
    """Turns a TokenwardError from any command into ``error: <detail>`` on stderr and exit 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except TokenwardError as exc:
            typer.secho(f"error: {exc.detail}", err=True, fg=typer.colors.RED)
            raise typer.Exit(1) from None


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment/config file, the global ``--data-dir`` option, then ``overrides``."""
    ctx = click.get_current_context(silent=True)
    root = ctx.find_root() if ctx else None
    data_dir = root.params.get("data_dir") if root else None
    return Settings.load(**{"data_dir": data_dir, **overrides})


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print ``error: message`` and return the Exit to raise."""
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code)
