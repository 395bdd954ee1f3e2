"""The command line: one module per command group, imported when the group is invoked (cli/_lazy.py)."""

__all__: list[str] = []
