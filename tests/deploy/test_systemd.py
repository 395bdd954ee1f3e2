"""deploy/systemd/tokenward.service passes `systemd-analyze verify` and keeps its hardening.

Outside CI a missing systemd-analyze skips with an install hint; under ``CI=true`` it fails.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import missing

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "systemd"
UNIT = DEPLOY / "tokenward.service"
INSTALLED_PATH = "/opt/tokenward/bin/tokenward"
# `systemd-analyze security` rates 0.0 (locked down) … 10.0 (unprotected); the unit rates 1.3.
MAX_EXPOSURE = 2.0


def systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    if found:
        return found
    missing("systemd-analyze is not installed: apt-get install systemd")


def unit_directives() -> dict[str, list[str]]:
    directives: dict[str, list[str]] = {}
    for line in UNIT.read_text(encoding="utf-8").splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            directives.setdefault(key.strip(), []).append(value.strip())
    return directives


@pytest.fixture
def unit_copy(tmp_path: Path) -> Path:
    # verify checks that ExecStart's program exists: point it at this venv's tokenward.
    tokenward = Path(sys.executable).parent / "tokenward"
    assert tokenward.exists(), "the tokenward console script is not installed in this venv"
    copy = tmp_path / "tokenward.service"
    copy.write_text(UNIT.read_text(encoding="utf-8").replace(INSTALLED_PATH, str(tokenward)), encoding="utf-8")
    return copy


def test_unit_passes_systemd_analyze_verify(unit_copy: Path) -> None:
    done = subprocess.run(
        [systemd_analyze(), "verify", "--man=no", unit_copy.name],
        cwd=unit_copy.parent,
        capture_output=True,
        text=True,
        timeout=60,
    )
    # Unknown or misspelt keys are only warnings (exit 0): any line naming the unit is a finding.
    findings = [line for line in (done.stdout + done.stderr).splitlines() if "tokenward.service" in line]
    assert done.returncode == 0 and not findings, done.stdout + done.stderr


def test_unit_exposure_stays_low(unit_copy: Path) -> None:
    done = subprocess.run(
        [
            systemd_analyze(),
            "security",
            "--offline=true",
            f"--threshold={int(MAX_EXPOSURE * 10)}",
            "--no-pager",
            str(unit_copy),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr


def test_unit_has_the_documented_hardening() -> None:
    got = unit_directives()
    expected = {
        "User": "tokenward",
        "StateDirectory": "tokenward",
        "StateDirectoryMode": "0700",
        "UMask": "0077",
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "CapabilityBoundingSet": "",
        "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
        "Environment": "TOKENWARD_DATA_DIR=/var/lib/tokenward",
    }
    for key, value in expected.items():
        assert value in got.get(key, []), f"{key}={value} missing from {UNIT.name}"
    assert "@system-service" in got["SystemCallFilter"]
    assert got["ExecStart"] == [f"{INSTALLED_PATH} serve"]
    # Secrets come from a root-owned 0600 file, never from Environment= lines in the unit.
    assert got["EnvironmentFile"] == ["-/etc/tokenward/tokenward.env"]
    secret_names = ("DATABASE_URL", "S3_SECRET_KEY", "S3_ACCESS_KEY", "CONFIG_KEY", "REDIS_URL", "SMTP_PASSWORD")
    assert not [line for line in got["Environment"] if any(name in line for name in secret_names)]


def test_env_example_names_only_known_settings_and_holds_no_secret() -> None:
    from tokenward.settings import Settings

    known = {f"TOKENWARD_{name.upper()}" for name in Settings.model_fields}
    for line in (DEPLOY / "tokenward.env.example").read_text(encoding="utf-8").splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, value = line.partition("=")
        assert name in known, f"tokenward.env.example: unknown setting {name}"
        if name.endswith(("_KEY", "_URL")) and name not in ("TOKENWARD_S3_URL",):
            assert "CHANGE-ME" in value, f"{name} in the example must be a placeholder"


def test_the_unit_and_env_example_are_valid_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from tests.helpers import clear_tokenward_env
    from tokenward.configsync import ConfigKey
    from tokenward.settings import Settings

    clear_tokenward_env(monkeypatch)
    values = dict(line.split("=", 1) for line in unit_directives()["Environment"])
    for line in (DEPLOY / "tokenward.env.example").read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name] = value
    values["TOKENWARD_CONFIG_KEY"] = ConfigKey.generate()  # the one placeholder with a format to meet
    values["TOKENWARD_DATA_DIR"] = str(tmp_path)
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    settings = Settings.load()  # raises ConfigError naming any setting the files get wrong
    assert settings.host == "127.0.0.1" and settings.log_format == "json"
    assert settings.workers == 2 and settings.server_name == "auth.example.com"
