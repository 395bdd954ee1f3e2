"""Config token store specs (``TOKENWARD_CONFIG_TOKEN_STORES``): the models and their parser.

Below settings (as :mod:`tokenward.durations` is for lifetimes), so the settings validator checks
the specs without importing forward auth; :mod:`tokenward.forwardauth.stores` builds the stores.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from tokenward.documents import load_text
from tokenward.errorcodes import ErrorCode
from tokenward.errors import BadRequest, ConfigError

__all__ = ["EnvOptions", "FileOptions", "SqlOptions", "StoreSpec", "outside_quotes", "parse_store_specs"]


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    cache_ttl: float = Field(default=0, ge=0, le=86400, description="Seconds a looked-up value is reused.")
    allow_plain: bool = Field(default=False, description="Accept unencrypted JSON/YAML documents as values.")


class FileOptions(_Options):
    path: Path
    check_interval: float = Field(default=1.0, ge=0, le=3600, description="Seconds between checks for changes.")


class EnvOptions(_Options):
    var: str = Field(min_length=1, max_length=256)


class SqlOptions(_Options):
    url: str = Field(min_length=1)
    query: str = Field(min_length=1, max_length=4096)

    @field_validator("query")
    @classmethod
    def _one_placeholder(cls, value: str) -> str:
        if outside_quotes(value).count("?") != 1:
            raise ValueError("the query needs exactly one ? placeholder for the token id")
        return value


class StoreSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    adapter: Literal["file", "env", "sql"]
    options: dict[str, Any] = Field(default_factory=dict)

    def parsed_options(self) -> FileOptions | EnvOptions | SqlOptions:
        if self.adapter == "file":
            return FileOptions.model_validate(self.options)
        if self.adapter == "env":
            return EnvOptions.model_validate(self.options)
        return SqlOptions.model_validate(self.options)


def outside_quotes(query: str) -> str:
    """The query without its quoted literals (a ? inside quotes is not a placeholder)."""
    return re.sub(r"'[^']*'|\"[^\"]*\"", "", query)


def parse_store_specs(source: str | None) -> dict[str, StoreSpec]:
    """Validate the ``TOKENWARD_CONFIG_TOKEN_STORES`` text; ConfigError naming the bad store and field."""
    if not source or not source.strip():
        return {}
    try:
        data = load_text(source, what="TOKENWARD_CONFIG_TOKEN_STORES value")
    except BadRequest as exc:
        raise ConfigError(exc.detail, code=ErrorCode.SETTING_INVALID) from None
    if not isinstance(data, dict):
        raise ConfigError(
            "TOKENWARD_CONFIG_TOKEN_STORES must map store ids to {adapter, options}", code=ErrorCode.SETTING_INVALID
        )
    specs: dict[str, StoreSpec] = {}
    for store_id, raw in data.items():
        try:
            spec = StoreSpec.model_validate(raw)
            spec.parsed_options()
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            msg = str(err["msg"]).removeprefix("Value error, ")
            raise ConfigError(
                f"TOKENWARD_CONFIG_TOKEN_STORES store {store_id!r}: {where}: {msg}", code=ErrorCode.SETTING_INVALID
            ) from None
        specs[str(store_id)] = spec
    return specs
