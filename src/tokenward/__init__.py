"""tokenward — a self-hosted token server.

Importing this package has no side effects: no environment reads, no files, no connections.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
