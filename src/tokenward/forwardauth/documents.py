"""Reading config token documents from text: moved to :mod:`tokenward.documents` (below settings)."""

from __future__ import annotations

from tokenward.documents import MAX_DOCUMENT_BYTES, load_text

__all__ = ["MAX_DOCUMENT_BYTES", "load_text"]
