"""Record types shared by the domain services and the stores: plain data, no SQLAlchemy.

They sit below ``storage`` (which maps them to rows) and below the domain packages that use them,
so the client SDK can import the domain modules without pulling SQLAlchemy in.
"""

from __future__ import annotations

__all__: list[str] = []
