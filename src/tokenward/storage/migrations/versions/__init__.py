"""Alembic revisions, one file per schema change (``rNNNN_slug.py``, revision id ``NNNN``)."""
