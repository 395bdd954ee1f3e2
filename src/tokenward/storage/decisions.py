"""The decision log's sinks: the ``decision_log`` table, or JSON-lines objects in the S3 bucket.

Instances append the decisions their :class:`~tokenward.policy.decisionlog.DecisionLog` kept, in
batches off the request path (``flush``), and delete those older than the retention;
``tokenward policy diff --from-log`` reads the newest back (``recent``). See docs/configuration.md,
"The decision log".
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Protocol

from sqlalchemy import Index, String, delete, insert, select
from sqlalchemy.orm import Mapped, mapped_column

from tokenward.policy.decisionlog import DecisionLog, DecisionRecord

from .blobs import BlobStore
from .database import Database
from .models import ACTION_LEN, INSTANCE_LEN, SUBJECT_LEN, Base
from .types import ID, UTCDateTime

__all__ = ["BlobDecisionSink", "DecisionLogRow", "DecisionSink", "SqlDecisionSink"]

ROW_LEN = 1024
_FILE_LEN = 32
_OBJ_LEN = 320
_VERSION_LEN = 64


class DecisionLogRow(Base):
    """``decision_log``: one sampled policy decision."""

    __tablename__ = "decision_log"
    __table_args__ = (
        Index("ix_decision_log_at", "at"),
        {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"},
    )

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    instance: Mapped[str] = mapped_column(String(INSTANCE_LEN), nullable=False)
    file: Mapped[str] = mapped_column(String(_FILE_LEN), nullable=False)
    sub: Mapped[str] = mapped_column(String(SUBJECT_LEN), nullable=False)
    dom: Mapped[str] = mapped_column(String(SUBJECT_LEN), nullable=False)
    obj: Mapped[str] = mapped_column(String(_OBJ_LEN), nullable=False)
    act: Mapped[str] = mapped_column(String(ACTION_LEN), nullable=False)
    decision: Mapped[str] = mapped_column(String(8), nullable=False)
    deciding_row: Mapped[str] = mapped_column(String(ROW_LEN), nullable=False)
    dialect: Mapped[str] = mapped_column(String(8), nullable=False)
    version: Mapped[str] = mapped_column(String(_VERSION_LEN), nullable=False)


def _cut(value: str, size: int) -> str:
    return value if len(value) <= size else value[: size - 1] + "…"


class DecisionSink(Protocol):
    """Where an instance's kept decisions go (SQL table or S3 objects)."""

    async def flush(self, log: DecisionLog, *, now: float) -> int: ...

    async def recent(self, limit: int) -> list[DecisionRecord]: ...

    async def close(self) -> None: ...


class SqlDecisionSink:
    """Writes a :class:`DecisionLog`'s pending records to ``decision_log`` and reads them back."""

    def __init__(self, db: Database, *, retention_seconds: float) -> None:
        self._db = db
        self.retention_seconds = retention_seconds
        self.written = 0

    async def flush(self, log: DecisionLog, *, now: float) -> int:
        """Write what ``log`` kept since the last flush; delete rows past the retention. Returns rows written."""
        records = log.take_pending()
        cutoff = datetime.fromtimestamp(now - self.retention_seconds, UTC)
        async with self._db.session() as session:
            if records:
                await session.execute(insert(DecisionLogRow), [self._row(r) for r in records])
            await session.execute(delete(DecisionLogRow).where(DecisionLogRow.at < cutoff))
        self.written += len(records)
        return len(records)

    @staticmethod
    def _row(record: DecisionRecord) -> dict[str, object]:
        return {
            "at": datetime.fromtimestamp(record.at, UTC),
            "instance": _cut(record.instance, INSTANCE_LEN),
            "file": record.file,
            "sub": _cut(record.sub, SUBJECT_LEN),
            "dom": _cut(record.dom, SUBJECT_LEN),
            "obj": _cut(record.obj, _OBJ_LEN),
            "act": _cut(record.act, ACTION_LEN),
            "decision": record.decision,
            "deciding_row": _cut(record.row, ROW_LEN),
            "dialect": record.dialect,
            "version": record.version,
        }

    async def close(self) -> None:
        """Nothing to release: the runtime owns the database."""

    async def recent(self, limit: int) -> list[DecisionRecord]:
        """The newest ``limit`` decisions of every instance, oldest first."""
        query = select(DecisionLogRow).order_by(DecisionLogRow.id.desc()).limit(limit)
        async with self._db.session() as session:
            rows = (await session.scalars(query)).all()
        return [
            DecisionRecord(
                at=row.at.timestamp(),
                instance=row.instance,
                file=row.file,
                sub=row.sub,
                dom=row.dom,
                obj=row.obj,
                act=row.act,
                decision="allow" if row.decision == "allow" else "deny",
                row=row.deciding_row,
                dialect=row.dialect,
                version=row.version,
            )
            for row in reversed(rows)
        ]


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
#: Deleting expired objects lists the whole prefix: at most this often.
PRUNE_INTERVAL = 3600.0


class BlobDecisionSink:
    """Decisions as JSON-lines objects ``decisions_<server>_<ms>-<instance>.jsonl`` in a blob store.

    One object per flush that had something to write. The prefix is outside the config bundle's
    (``<server>_``), so ``tokenward config prune`` never touches it.
    """

    def __init__(self, store: BlobStore, *, server: str, instance: str, retention_seconds: float) -> None:
        self._store = store
        self.prefix = f"decisions_{server}_"
        self._instance = _UNSAFE.sub("_", instance)[:64] or "instance"
        self.retention_seconds = retention_seconds
        self._pruned_at = float("-inf")
        self.written = 0

    async def flush(self, log: DecisionLog, *, now: float) -> int:
        """Write what ``log`` kept since the last flush as one object; prune expired ones hourly."""
        records = log.take_pending()
        if records:
            body = "".join(json.dumps(r.to_json(), separators=(",", ":")) + "\n" for r in records)
            await self._store.put(f"{self.prefix}{int(now * 1000):015d}-{self._instance}.jsonl", body.encode())
            self.written += len(records)
        if now - self._pruned_at >= PRUNE_INTERVAL:
            self._pruned_at = now
            cutoff = int((now - self.retention_seconds) * 1000)
            for name in await self._store.list(self.prefix):
                stamp = name[len(self.prefix) :].split("-", 1)[0]
                if stamp.isdigit() and int(stamp) < cutoff:
                    await self._store.delete(name)
        return len(records)

    async def recent(self, limit: int) -> list[DecisionRecord]:
        """The newest ``limit`` decisions of every instance, oldest first (objects read newest first)."""
        found: list[DecisionRecord] = []
        for name in reversed(await self._store.list(self.prefix)):
            blob = await self._store.get(name)
            if blob is None:
                continue
            lines = [line for line in blob.data.decode("utf-8", "replace").splitlines() if line.strip()]
            batch: list[DecisionRecord] = []
            for line in lines:
                try:
                    data = json.loads(line)
                except ValueError:
                    continue  # a damaged line costs that line, not the replay
                if isinstance(data, dict):
                    batch.append(DecisionRecord.from_json(data))
            found[:0] = batch
            if len(found) >= limit:
                break
        return found[-limit:]

    async def close(self) -> None:
        await self._store.close()
