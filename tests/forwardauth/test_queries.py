from __future__ import annotations

import pytest

from tokenward.errors import BadRequest
from tokenward.forwardauth.queries import compile_query

DATA = {"parsedUri": {"host": "wiki.example.com", "port": 443}, "parsedQuery": {"a": "1", "b": ["2", "3"]}}


def test_jsonpath_and_template() -> None:
    assert compile_query("jp", "$.parsedUri.host").one(DATA, name="x") == "wiki.example.com"
    assert compile_query("jp", "$.parsedUri.port").one(DATA, name="x") == "443"
    assert compile_query("jp", "$.parsedQuery.b[*]").values(DATA) == ["2", "3"]
    assert compile_query("template", "{{ parsedUri.host.split('.')[0] }}").one(DATA, name="x") == "wiki"


@pytest.mark.parametrize(
    ("engine", "query", "code"),
    [
        ("js", "1", "query_engine_unknown"),
        ("jp", "$[", "query_invalid"),
        ("template", "{% for i in range(99999) %}{% endfor %}", "query_invalid"),
        ("jp", "$" * 2000, "query_too_long"),
    ],
)
def test_bad_queries(engine: str, query: str, code: str) -> None:
    with pytest.raises(BadRequest) as info:
        compile_query(engine, query)
    assert info.value.error_code == code


@pytest.mark.parametrize(
    "query",
    ["{{ 'a' * 100000000 }}", "{{ [1] * 100000000 }}", "{{ 10 ** 100000 }}", "{{ ''.__class__.__mro__ }}", "{{ x }}"],
)
def test_template_abuse_is_a_400(query: str) -> None:
    with pytest.raises(BadRequest) as info:
        compile_query("template", query).values(DATA)
    assert info.value.error_code == "query_failed"


def test_several_or_no_values() -> None:
    with pytest.raises(BadRequest) as info:
        compile_query("jp", "$.parsedQuery.b[*]").one(DATA, name="x")
    assert info.value.error_code == "query_ambiguous"
    with pytest.raises(BadRequest) as info:
        compile_query("jp", "$.nothing").one(DATA, name="x")
    assert info.value.error_code == "query_no_value"
