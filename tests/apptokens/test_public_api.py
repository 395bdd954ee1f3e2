from __future__ import annotations

import importlib

import pytest


@pytest.mark.parametrize(
    "module",
    [
        "tokenward.apptokens",
        "tokenward.apptokens.access",
        "tokenward.apptokens.cache",
        "tokenward.apptokens.expiry",
        "tokenward.apptokens.format",
        "tokenward.apptokens.regulation",
        "tokenward.apptokens.service",
        "tokenward.storage.apptokens",
        "tokenward.storage.regulation",
        "tokenward.web.auth",
    ],
)
def test_all_names_exist(module: str) -> None:
    mod = importlib.import_module(module)
    names = mod.__all__
    assert len(set(names)) == len(names)
    for name in names:
        assert hasattr(mod, name), f"{module}.{name}"
