"""The seven policy files: names, reading from the data dir, and parsing CSV rows.

Reading (:func:`read_sources`) is the only I/O in the package besides :mod:`.reload` and
:mod:`.samples`; everything else takes the bytes it returns. Every error names ``file:line``.

Row syntax follows Casbin's file adapter: ``p, sub, dom, obj, act``; blank lines and lines whose
first non-blank character is ``#`` are ignored; fields are trimmed of spaces and tabs. A field
may be wrapped in double quotes to hold a comma (``"a{1,3}@x"``), with ``""`` for a quote.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path

from tokenward.errorcodes import ErrorCode
from tokenward.errors import PolicyError
from tokenward.policy.model import Rule

__all__ = [
    "CSV_FILES",
    "MAX_FILE_BYTES",
    "MAX_LINE_LENGTH",
    "MODEL_FILES",
    "MODEL_OF",
    "POLICY_FILES",
    "content_version",
    "decode",
    "parse_rows",
    "read_sources",
]

MODEL_FILES = ("model.conf", "captchamodel.conf")
CSV_FILES = (
    "userpolicy.csv",
    "resourcepolicy.csv",
    "clientappspolicy.csv",
    "clientscopespolicy.csv",
    "captchapolicy.csv",
)
POLICY_FILES = MODEL_FILES + CSV_FILES
#: Which model file gives each CSV file its meaning (docs/policies.md).
MODEL_OF: Mapping[str, str] = {
    name: "captchamodel.conf" if name == "captchapolicy.csv" else "model.conf" for name in CSV_FILES
}

#: Largest policy file accepted (a million realistic rows is ~70 MB).
MAX_FILE_BYTES = 256 * 1024 * 1024
#: Longest line accepted in a policy file.
MAX_LINE_LENGTH = 4096


def read_sources(data_dir: Path, *, max_bytes: int = MAX_FILE_BYTES) -> dict[str, bytes]:
    """Read whichever of the seven policy files exist in ``data_dir`` (missing ones are omitted).

    A file over ``max_bytes`` is refused (``policy_file_too_large``) before it is read whole;
    other OS errors become ``policy_file_unreadable``.
    """
    sources: dict[str, bytes] = {}
    for name in POLICY_FILES:
        path = data_dir / name
        try:
            with path.open("rb") as handle:
                data = handle.read(max_bytes + 1)
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise PolicyError(
                f"{name}:0: cannot read ({exc.strerror})", code=ErrorCode.POLICY_FILE_UNREADABLE
            ) from None
        if len(data) > max_bytes:
            raise PolicyError(f"{name}:0: file is larger than {max_bytes} bytes", code=ErrorCode.POLICY_FILE_TOO_LARGE)
        sources[name] = data
    return sources


def content_version(sources: Mapping[str, bytes]) -> str:
    """The policy version: SHA-256 over the names and contents of the files present."""
    digest = hashlib.sha256()
    for name in sorted(sources):
        digest.update(name.encode() + b"\0" + str(len(sources[name])).encode() + b"\0" + sources[name])
    return digest.hexdigest()


def decode(data: bytes, *, file: str) -> str:
    """UTF-8 text of a policy file (a leading BOM is dropped); bad bytes name their line."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise PolicyError(
            f"{file}:{line}: not valid UTF-8 (byte {exc.start})", code=ErrorCode.POLICY_ENCODING
        ) from None
    return text.removeprefix("\ufeff")


def _split_fields(line: str, *, file: str, number: int) -> list[str]:
    if '"' not in line:
        return [field.strip(" \t") for field in line.split(",")]
    fields: list[str] = []
    i, n = 0, len(line)
    while True:
        while i < n and line[i] in " \t":
            i += 1
        if i < n and line[i] == '"':
            value: list[str] = []
            i += 1
            while True:
                end = line.find('"', i)
                if end < 0:
                    raise PolicyError(f"{file}:{number}: unterminated quoted field", code=ErrorCode.POLICY_ROW_INVALID)
                value.append(line[i:end])
                if line.startswith('""', end):
                    value.append('"')
                    i = end + 2
                    continue
                i = end + 1
                break
            while i < n and line[i] in " \t":
                i += 1
            if i < n and line[i] != ",":
                raise PolicyError(f"{file}:{number}: text after a closing quote", code=ErrorCode.POLICY_ROW_INVALID)
            fields.append("".join(value))
        else:
            end = line.find(",", i)
            end = n if end < 0 else end
            field = line[i:end].strip(" \t")
            if '"' in field:
                raise PolicyError(f"{file}:{number}: stray quote in field {field!r}", code=ErrorCode.POLICY_ROW_INVALID)
            fields.append(field)
            i = end
        if i >= n:
            return fields
        i += 1  # the comma


def parse_rows(text: str, *, file: str, columns: int = 4, ptypes: frozenset[str] = frozenset({"p"})) -> list[Rule]:
    """Parse the rows of one CSV policy file.

    ``columns`` is the number of fields after the ptype (4 for the supported model). Raises
    :class:`PolicyError` ``policy_row_invalid`` with file:line on the first bad row.
    """
    rows: list[Rule] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if len(raw) > MAX_LINE_LENGTH:
            raise PolicyError(
                f"{file}:{number}: line longer than {MAX_LINE_LENGTH} characters", code=ErrorCode.POLICY_ROW_INVALID
            )
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if "\0" in line:
            raise PolicyError(f"{file}:{number}: NUL character", code=ErrorCode.POLICY_ROW_INVALID)
        fields = _split_fields(line, file=file, number=number)
        ptype, values = fields[0], fields[1:]
        if ptype not in ptypes:
            raise PolicyError(
                f"{file}:{number}: row type {ptype!r} is not one of {', '.join(sorted(ptypes))}",
                code=ErrorCode.POLICY_ROW_INVALID,
            )
        if len(values) != columns:
            raise PolicyError(
                f"{file}:{number}: expected {columns} fields after {ptype!r}, found {len(values)}",
                code=ErrorCode.POLICY_ROW_INVALID,
            )
        for position, value in enumerate(values, start=1):
            if not value:
                raise PolicyError(f"{file}:{number}: field {position} is empty", code=ErrorCode.POLICY_ROW_INVALID)
        if columns == 4:
            rows.append(Rule(values[0], values[1], values[2], values[3], file, number, ptype))
        else:  # an unsupported model of another arity: keep every field for the slow path
            padded = (*values, "", "", "")
            rows.append(Rule(padded[0], padded[1], padded[2], padded[3], file, number, ptype, tuple(values)))
    return rows
