"""Command groups imported only when they run, so `tokenward --help`, `--version` and light commands start fast.

Each group module pulls in what its commands need (SQLAlchemy, the runtime, boto3, Authlib …), about
a second of imports that a command of another group never uses. The root group lists a
:class:`LazyCommand` stand-in (name and one-line help) for each entry of its table and imports the
module when the command is invoked. ``tests/cli/test_lazy.py`` checks every stand-in against the
real command.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, ClassVar

import typer
import typer.main
from typer.core import TyperCommand, TyperGroup

from tokenward.cli._common import GuardedGroup

__all__ = ["LazyCommand", "LazyGroup", "LazySpec", "load_command"]


@dataclass(frozen=True)
class LazySpec:
    """One command of the root group, imported on use."""

    name: str
    # "module:attribute": a typer.Typer (a command group) or a function (a single command).
    target: str
    # The first paragraph of the real command's help, shown by `tokenward --help`.
    help: str
    # False for a single command (listed before the groups, as typer lists eager ones).
    group: bool = True


class LazyCommand(TyperCommand):
    """Stands in for a command in the root group until it is invoked."""

    def __init__(self, spec: LazySpec) -> None:
        super().__init__(spec.name, help=spec.help)
        self.spec = spec


def load_command(spec: LazySpec) -> Any:
    """Import ``spec.target`` and build the click command exactly as ``add_typer``/``command`` would."""
    module_name, _, attribute = spec.target.partition(":")
    target = getattr(importlib.import_module(module_name), attribute)
    holder = typer.Typer()
    if isinstance(target, typer.Typer):
        holder.add_typer(target, name=spec.name)
    else:
        holder.command(spec.name)(target)
    holder.callback()(_no_options)  # a callback makes typer build a group even around one command
    group = typer.main.get_command(holder)
    if not isinstance(group, TyperGroup):  # pragma: no cover - typer always builds a group here
        raise TypeError(f"cannot build the {spec.name!r} command from {spec.target}")
    return group.commands[spec.name]


def _no_options() -> None:
    """Placeholder callback."""


class LazyGroup(GuardedGroup):
    """The root group: commands built by typer as usual, plus ``lazy_commands`` imported on use.

    Lazy single commands are listed first and lazy groups last, the order typer gives commands and
    groups registered eagerly.
    """

    lazy_commands: ClassVar[tuple[LazySpec, ...]] = ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        first = {spec.name: LazyCommand(spec) for spec in self.lazy_commands if not spec.group}
        last = {spec.name: LazyCommand(spec) for spec in self.lazy_commands if spec.group}
        self.commands = {**first, **self.commands, **last}

    # ctx and the commands are click's types (typer may vendor its own click): Any keeps this independent of that.
    def resolve_command(self, ctx: Any, args: list[str]) -> tuple[str | None, Any, list[str]]:
        name, command, rest = super().resolve_command(ctx, args)
        if isinstance(command, LazyCommand) and name is not None:
            command = self.commands[name] = load_command(command.spec)
        return name, command, rest

    def load_all(self) -> None:
        """Replace every stand-in by its real command (for tests and documentation tools)."""
        for name, command in list(self.commands.items()):
            if isinstance(command, LazyCommand):
                self.commands[name] = load_command(command.spec)
