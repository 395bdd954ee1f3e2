from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import clear_tokenward_env
from tokenward.errors import ConfigError
from tokenward.settings import Settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:

    clear_tokenward_env(monkeypatch)


def test_defaults() -> None:
    s = Settings.load()
    assert (s.host, s.port, s.log_format, s.policy_dialect) == ("127.0.0.1", 8080, "text", "glob")
    assert s.database_url is None and s.database_url_or_default.startswith("sqlite:///")
    assert s.policy_segments == {"user", "resource", "captcha", "system"}


def test_env_and_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOKENWARD_PORT", "9001")
    monkeypatch.setenv("TOKENWARD_LOG_LEVEL", "debug")
    monkeypatch.setenv("TOKENWARD_POLICY_SEGMENTS", "user, captcha")
    s = Settings.load(host="0.0.0.0", port=None)
    assert (s.port, s.log_level, s.host) == (9001, "DEBUG", "0.0.0.0")
    assert s.policy_segments == {"user", "captcha"}
    assert Settings.load(port=9002).port == 9002


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("TOKENWARD_PORT", "70000", "invalid setting TOKENWARD_PORT: Input should be less than or equal to 65535"),
        ("TOKENWARD_PORT", "http", "invalid setting TOKENWARD_PORT: Input should be a valid integer"),
        ("TOKENWARD_LOG_FORMAT", "xml", "invalid setting TOKENWARD_LOG_FORMAT"),
        (
            "TOKENWARD_POLICY_SEGMENTS",
            "user,bogus",
            "invalid setting TOKENWARD_POLICY_SEGMENTS: unknown segment(s) bogus",
        ),
        ("TOKENWARD_SERVER_NAME", "not a name", "invalid setting TOKENWARD_SERVER_NAME"),
        ("TOKENWARD_TLS_CERT", "/x.pem", "TOKENWARD_TLS_CERT and TOKENWARD_TLS_KEY must be set together"),
        ("TOKENWARD_MAX_BODY_BYTES", "1", "invalid setting TOKENWARD_MAX_BODY_BYTES"),
        ("TOKENWARD_PROT", "1", "unknown setting TOKENWARD_PROT (did you mean TOKENWARD_PORT?)"),
    ],
)
def test_bad_values_fail_with_one_line_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as info:
        Settings.load()
    assert expected in info.value.detail
    assert "\n" not in info.value.detail


def test_config_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "tokenward.toml"
    path.write_text('[tokenward]\nport = 9100\nlog_format = "json"\n', encoding="utf-8")
    monkeypatch.setenv("TOKENWARD_CONFIG_FILE", str(path))
    assert (Settings.load().port, Settings.load().log_format) == (9100, "json")
    monkeypatch.setenv("TOKENWARD_PORT", "9200")  # the environment wins over the file
    assert Settings.load().port == 9200


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("port = [", "is not valid TOML"),
        ("prot = 1", "unknown setting 'prot' in config file"),
        ('port = "high"', "invalid setting TOKENWARD_PORT"),
        (None, "cannot read config file"),
    ],
)
def test_bad_config_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, content: str | None, expected: str) -> None:
    path = tmp_path / "tokenward.toml"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    monkeypatch.setenv("TOKENWARD_CONFIG_FILE", str(path))
    with pytest.raises(ConfigError) as info:
        Settings.load()
    assert expected in info.value.detail


def test_importing_reads_nothing() -> None:
    import subprocess
    import sys

    code = (
        "import os, builtins\n"
        "opened = []\n"
        "real = builtins.open\n"
        "builtins.open = lambda *a, **k: (opened.append(a[0]), real(*a, **k))[1]\n"
        "os.environ['TOKENWARD_PORT'] = 'not-a-port'\n"
        "import tokenward, tokenward.settings, tokenward.keys, tokenward.errors\n"
        "assert not opened, opened\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_every_setting_is_documented() -> None:
    doc = (Path(__file__).resolve().parents[1] / "docs" / "configuration.md").read_text(encoding="utf-8")
    missing = [f"TOKENWARD_{name.upper()}" for name in Settings.model_fields if f"TOKENWARD_{name.upper()}" not in doc]
    assert not missing, f"add these settings to docs/configuration.md: {missing}"


def test_a_retired_setting_is_ignored_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # An upgrade must not stop a deployment that still sets a setting the server no longer has.
    import tokenward.settings as settings_module

    monkeypatch.setattr(settings_module, "_warned_retired", set())
    monkeypatch.setenv("TOKENWARD_CONFIG_TOKEN_REVOCATION_REFRESH_SECONDS", "2")
    with caplog.at_level("WARNING", logger="tokenward.settings"):
        Settings.load()
    assert "TOKENWARD_CONFIG_TOKEN_REVOCATION_REFRESH_SECONDS is no longer used" in caplog.text
    assert "change feed" in caplog.text
    monkeypatch.setenv("TOKENWARD_APP_TOKENS_CACHE_TTL_SECONDS", "0.5")  # retired with the app-token cache TTL
    with caplog.at_level("WARNING", logger="tokenward.settings"):
        Settings.load()
    assert "TOKENWARD_APP_TOKENS_CACHE_TTL_SECONDS is no longer used" in caplog.text
    monkeypatch.delenv("TOKENWARD_APP_TOKENS_CACHE_TTL_SECONDS")
    monkeypatch.delenv("TOKENWARD_CONFIG_TOKEN_REVOCATION_REFRESH_SECONDS")
    path = tmp_path / "tokenward.toml"
    path.write_text("config_token_revocation_refresh_seconds = 2\nport = 9100\n", encoding="utf-8")
    monkeypatch.setenv("TOKENWARD_CONFIG_FILE", str(path))
    assert Settings.load().port == 9100
    # Only retired names: a misspelt one still stops the start.
    monkeypatch.setenv("TOKENWARD_CONFIG_TOKEN_REVOCATION_REFRESH_SECOND", "2")
    with pytest.raises(ConfigError) as info:
        Settings.load()
    assert "unknown setting TOKENWARD_CONFIG_TOKEN_REVOCATION_REFRESH_SECOND" in info.value.detail
