"""Hypothesis properties over every parser of untrusted input (tests/fuzz/targets.py).

For arbitrary input each parser returns a value or raises a TokenwardError subclass, never another
exception (which would be a 500 on the web, a traceback in the CLI). Inputs are both free-form and
mutations of valid samples (so the fuzzing reaches past the first shape check). Where a serializer
exists, parse(serialize(x)) gives back x. ``make fuzz`` runs the same targets under atheris.
"""

from __future__ import annotations

import base64
import json
import string

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.fuzz import targets
from tests.fuzz.targets import TARGETS, seeds
from tokenward.apptokens import format as apptoken_format
from tokenward.configsync.manifest import Manifest
from tokenward.durations import parse_duration
from tokenward.errors import TokenwardError
from tokenward.forwardauth.config_token import decode_token, encode_token
from tokenward.identity import apps, captcha, client_tokens, source
from tokenward.identity.resources import ResourceRegistry
from tokenward.keys import Secret, TimeCode
from tokenward.policy import DEFAULT_MODEL, build_policy
from tokenward.web.auth import parse_basic

FUZZ = settings(max_examples=100, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])

_SEEDS = seeds()


@st.composite
def _mutated(draw: st.DrawFn, name: str) -> bytes:
    """A valid sample of ``name`` with a slice replaced by random bytes (truncation, flips, insertions)."""
    seed = draw(st.sampled_from(_SEEDS[name]))
    start = draw(st.integers(0, len(seed)))
    cut = draw(st.integers(0, 8))
    filler = draw(
        st.one_of(st.binary(max_size=8), st.text(string.ascii_letters + string.digits + '-_.=:,"[]{}', max_size=8))
    )
    insert = filler if isinstance(filler, bytes) else filler.encode()
    return seed[:start] + insert + seed[start + cut :]


def _inputs(name: str) -> st.SearchStrategy[bytes]:
    return st.one_of(st.binary(max_size=512), st.text(max_size=256).map(str.encode), _mutated(name))


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_parser_returns_a_value_or_a_tokenward_error(name: str) -> None:
    target = TARGETS[name]

    @FUZZ
    @given(data=_inputs(name))
    def check(data: bytes) -> None:
        target.run_bytes(data)  # anything but a TokenwardError propagates and fails the test

    check()


def test_every_seed_parses() -> None:
    """The fuzzers start from valid inputs (or the mutations above prove nothing past the first check)."""
    for name, samples in _SEEDS.items():
        for sample in samples:
            assert TARGETS[name].run_bytes(sample) is not None, (name, sample[:40])


# --- specific inputs found while writing these properties -----------------------------------------


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("config_token", b"W" * 20000),  # base64 of "[[[[" ...: deeply nested JSON in the header
        ("config_token", base64.urlsafe_b64encode(b"[" * 20000)),
        ("config_document", b"[" * 20000),
        ("client_ids_file", b"[" * 20000),
        ("resources_file", b"[" * 20000),
        ("origin", b"https://[::1/"),
        ("origin", b"https://h:\xc2\xb2/"),
        ("bundle_manifest", b"[" * 20000),
        ("forwarded_headers", json.dumps({"X-Original-URL": "http://[abc/"}).encode()),
        ("forwarded_headers", json.dumps({"X-Original-URL": "http://h:99999999/"}).encode()),
        ("forwarded_headers", json.dumps({"X-Original-URL": "http://h:\u00b2/"}).encode()),
        (
            "forwarded_headers",
            json.dumps(
                {"X-Forwarded-Proto": "http", "X-Forwarded-Host": "h:" + "1" * 5000, "X-Forwarded-Uri": "/"}
            ).encode(),
        ),
        ("basic_header", b"Basic " + base64.b64encode(b"\xff\xfe:x")),
        ("query_expression", b"a{{ user.__class__.__mro__ }}"),
    ],
)
def test_known_hard_inputs(name: str, data: bytes) -> None:
    TARGETS[name].run_bytes(data)


# --- round trips ------------------------------------------------------------------------------------

_printable = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x2FFF, exclude_categories=["Cs"]), min_size=1)


@FUZZ
@given(user=_printable.filter(lambda s: ":" not in s), password=_printable)
@example(user="alice", password="p:a:ss")
def test_basic_round_trip(user: str, password: str) -> None:
    credentials = base64.b64encode(f"{user}:{password}".encode()).decode()
    assert parse_basic(credentials) == (user, password)


@FUZZ
@given(label=st.integers(0, 10**9).map(lambda m: m - m % 15), secret=st.binary(min_size=32, max_size=32))
def test_time_code_round_trip(label: int, secret: bytes) -> None:
    code = TimeCode(label=label, secret=Secret(secret))
    again = TimeCode.parse(code.format())
    assert (again.label, again.secret.reveal()) == (label, secret)


def test_app_token_round_trip() -> None:
    for _ in range(50):
        token, parsed = apptoken_format.generate()
        again = apptoken_format.parse(token)
        assert again.id == parsed.id
        assert again.secret.reveal() == parsed.secret.reveal()


@FUZZ
@given(
    subject=st.emails(),
    scopes=st.lists(st.text(string.ascii_letters + ":.", min_size=1, max_size=12), max_size=4).map(tuple),
)
def test_source_identifier_round_trip(subject: str, scopes: tuple[str, ...]) -> None:
    token = targets.sample_source_identifier(subject, scopes)
    identity = source.open_source_identifier(token, keyring=targets.KEYRING, now=targets.NOW)
    assert (identity.subject, identity.scopes) == (subject, scopes)


@FUZZ
@given(
    code=st.text(string.ascii_uppercase, min_size=5, max_size=5),
    subject=st.emails(),
    aead=st.sampled_from(sorted(captcha.AEADS)),
)
def test_captcha_round_trip(code: str, subject: str, aead: str) -> None:
    plain = captcha.open_captcha(targets.sample_captcha(code, subject, aead), targets.CAPTCHA_KEY)
    assert (plain.code, plain.subject, plain.server) == (code, subject, targets.SERVER)


@FUZZ
@given(
    source_name=st.emails(),
    scopes=st.lists(st.text(string.ascii_letters, min_size=1, max_size=8), max_size=3).map(tuple),
)
def test_client_token_round_trip(source_name: str, scopes: tuple[str, ...]) -> None:
    token = targets.sample_client_token(source_name, scopes)
    claims = client_tokens.verify_client_token(token, targets.CLIENT_KEYS, now=targets.NOW, issuer=targets.SERVER)
    assert (claims.source, claims.scopes) == (source_name, scopes)


@FUZZ
@given(
    headers=st.dictionaries(
        st.text(string.ascii_letters + "-", min_size=1, max_size=20),
        st.fixed_dictionaries({"value": st.text(string.ascii_letters + "{}. ", min_size=1, max_size=20)}),
        max_size=3,
    ),
    exp=st.integers(int(targets.NOW) + 1, 2**40),
    signed_only=st.booleans(),
)
def test_config_token_round_trip(headers: dict[str, dict[str, str]], exp: int, signed_only: bool) -> None:
    doc = {"exp": exp, "tokenward": {"plugins": [{"type": "noop"}]}}
    try:
        token = encode_token(doc, targets.KEYRING, signed_only=signed_only)
    except TokenwardError:
        return
    decoded = decode_token(token, targets.KEYRING, now=targets.NOW)
    assert decoded.document.exp == exp
    assert decoded.kind == ("jws" if signed_only else "jwe")
    assert decode_token(encode_token(decoded.document, targets.KEYRING), targets.KEYRING, now=targets.NOW).document == (
        decoded.document
    )


def test_manifest_round_trip() -> None:
    data = targets.sample_manifest()
    manifest = Manifest.parse(data, server=targets.SERVER)
    assert manifest.render() == data
    assert Manifest.parse(manifest.render(), server=targets.SERVER) == manifest


_field = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E, exclude_characters=',"#'), min_size=1).map(
    str.strip
)


@FUZZ
@given(rows=st.lists(st.tuples(_field, _field, _field, _field), max_size=5))
def test_policy_rows_round_trip(rows: list[tuple[str, str, str, str]]) -> None:
    """Rows written as quoted CSV come back field for field (or the pattern is refused with a PolicyError)."""
    rows = [r for r in rows if all(r)]

    def quote(value: str) -> str:
        return '"' + value.replace('"', '""') + '"'

    text = "".join("p, " + ", ".join(quote(v) for v in row) + "\n" for row in rows)
    try:
        policy = build_policy({"userpolicy.csv": text.encode()}, dialect="glob")
    except TokenwardError as exc:
        assert exc.error_code.startswith("policy_")
        return
    got = [(r.sub, r.dom, r.obj, r.act) for r in policy.rules("userpolicy.csv")]
    assert got == rows


def test_model_with_an_unknown_effect_is_a_policy_error() -> None:
    model = DEFAULT_MODEL.replace("some(where (p.eft == allow))", "some(where (p.eft == maybe))")
    assert model != DEFAULT_MODEL
    with pytest.raises(TokenwardError) as info:
        build_policy({"model.conf": model.encode()})
    assert info.value.error_code == "policy_model_invalid"


@FUZZ
@given(
    names=st.lists(
        st.text(string.ascii_letters + " -", min_size=1, max_size=30).map(str.strip), max_size=4, unique=True
    ),
    hosts=st.lists(
        st.from_regex(r"[a-z]{1,12}\.example\.com(:[1-9][0-9]{0,3})?", fullmatch=True), min_size=1, max_size=3
    ),
)
def test_client_ids_round_trip(names: list[str], hosts: list[str]) -> None:
    registry = apps.ClientRegistry()
    for i, name in enumerate(n for n in names if n):
        registry, _ = registry.register(name=name, origins=hosts, client_id=f"{i:040X}", now=int(targets.NOW))
    assert apps.ClientRegistry.parse(registry.render()) == registry


@FUZZ
@given(names=st.lists(st.from_regex(r"[a-z]{1,12}\.example\.com", fullmatch=True), max_size=4, unique=True))
def test_resources_round_trip(names: list[str]) -> None:
    registry = ResourceRegistry()
    for name in names:
        registry = registry.register(name, "A" * 43)
    assert ResourceRegistry.parse(registry.render()) == registry


@FUZZ
@given(weeks=st.integers(0, 5), hours=st.integers(0, 48), minutes=st.integers(0, 59))
def test_expiry_round_trip(weeks: int, hours: int, minutes: int) -> None:
    text = "".join(f"{n}{u}" for n, u in ((weeks, "w"), (hours, "h"), (minutes, "m")) if n)
    if not text:
        return
    assert parse_duration(text).total_seconds() == weeks * 604800 + hours * 3600 + minutes * 60
