"""The web layer: the ASGI app, its routes, portal pages and the /verify hot path (docs/architecture.md)."""

__all__: list[str] = []
