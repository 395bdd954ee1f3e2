"""The web portal: server-rendered pages (Jinja2), a little vanilla JS, no build step (docs/ui.md).

:data:`routes` are plain Starlette routes added by :func:`tokenward.web.app.create_app`, plus a
``/static`` mount for the stylesheet and script.
"""

from __future__ import annotations

from pathlib import Path

from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles

from tokenward.web.ui import admin, pages

__all__ = ["routes"]

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

routes: list[BaseRoute] = [
    *pages.routes,
    *admin.routes,
    Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"),
]
