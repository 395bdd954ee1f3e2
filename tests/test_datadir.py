from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from tokenward.datadir import DataDir, TimeCodes, check_secret_file, write_private
from tokenward.errors import ConfigError, InsecureFileError
from tokenward.keys import TimeCode

NOW = 1_776_000_000.0


def code(seed: int) -> TimeCode:
    return TimeCode.generate(now=NOW, random_bytes=bytes([seed]) * 32)


def test_create_is_0700_and_timecode_0600(tmp_path: Path) -> None:
    dd = DataDir(tmp_path / "data")
    dd.create()
    dd.write_timecodes(TimeCodes(code(1)))
    assert stat.S_IMODE(dd.path.stat().st_mode) == 0o700
    assert stat.S_IMODE(dd.timecode_file.stat().st_mode) == 0o600
    assert dd.read_timecodes().current.key_id == code(1).key_id


def test_install_keeps_previous_for_grace(tmp_path: Path) -> None:
    dd = DataDir(tmp_path)
    dd.install_timecode(code(1), now=NOW, grace_seconds=0)
    codes = dd.install_timecode(code(2), now=NOW, grace_seconds=600)
    assert codes.previous is not None and codes.previous.key_id == code(1).key_id
    assert codes.previous_until == NOW + 600
    again = dd.read_timecodes()
    assert again.current.key_id == code(2).key_id and again.previous_until == NOW + 600


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644])
def test_insecure_secret_file_names_file_and_fix(tmp_path: Path, mode: int) -> None:
    dd = DataDir(tmp_path)
    dd.write_timecodes(TimeCodes(code(1)))
    dd.timecode_file.chmod(mode)
    with pytest.raises(InsecureFileError) as info:
        dd.read_timecodes()
    assert str(dd.timecode_file) in info.value.detail
    assert f"chmod 600 {dd.timecode_file}" in info.value.detail


def test_damaged_file_is_not_overwritten(tmp_path: Path) -> None:
    dd = DataDir(tmp_path)
    write_private(dd.timecode_file, b'{"current": "tw1.broken"}')
    with pytest.raises(ConfigError) as info:
        dd.install_timecode(code(2), now=NOW, grace_seconds=10)
    assert info.value.error_code == "timecode_invalid"
    assert json.loads(dd.timecode_file.read_bytes()) == {"current": "tw1.broken"}


def test_missing_secret_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        check_secret_file(tmp_path / "nope")
    assert info.value.error_code == "secret_missing"
    with pytest.raises(ConfigError) as info:
        DataDir(tmp_path).read_timecodes()
    assert info.value.error_code == "timecode_missing"


def test_server_name_round_trip_and_validation(tmp_path: Path) -> None:
    dd = DataDir(tmp_path)
    assert dd.read_server_name() is None
    dd.write_server_name("Auth.Example.COM")
    assert dd.read_server_name() == "auth.example.com"
    dd.server_name_file.write_text("bad name!\n")
    with pytest.raises(ConfigError):
        dd.read_server_name()
