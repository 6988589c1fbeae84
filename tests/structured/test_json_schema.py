"""The JSON Schema → GBNF compiler without a model: shapes, bounds, and refusals."""

from __future__ import annotations

import re
from typing import Any

import pytest

from llmos.errors import InvalidRequest
from llmos.structured import compile_json_schema, json_object_grammar
from llmos.structured.numbers import integer_range, nonnegative_number_range
from llmos.structured.regex import RegexUnsupported, regex_to_gbnf


def _gbnf_expr_to_python_regex(expr: str) -> str:
    """Good enough for the number grammars: quoted literals, classes, groups, {m,n}."""
    out = re.sub(r'"([^"]*)"', lambda m: re.escape(m.group(1)), expr)
    return out.replace(" ", "")


@pytest.mark.parametrize(
    ("lo", "hi"),
    [
        (0, 5),
        (15, 342),
        (-20, 7),
        (None, -3),
        (5, None),
        (-1000, -999),
        (0, 0),
        (1, 100),
        (None, None),
        (-5, None),
    ],
)
def test_integer_range_matches_exactly_the_integers_in_bounds(lo: int | None, hi: int | None) -> None:
    pattern = re.compile("^(" + _gbnf_expr_to_python_regex(integer_range(lo, hi)) + ")$")
    for n in [*range(-1200, 1200), 10**9, -(10**9), 123456]:
        inside = (lo is None or n >= lo) and (hi is None or n <= hi)
        assert bool(pattern.match(str(n))) == inside, (lo, hi, n)
    assert not pattern.match("007")


def test_number_range_with_integer_bounds() -> None:
    pattern = re.compile("^(" + _gbnf_expr_to_python_regex(nonnegative_number_range(0, 1)) + ")$")
    for text, ok in [
        ("0", True),
        ("0.5", True),
        ("1", True),
        ("1.0", True),
        ("1.5", False),
        ("2", False),
        ("-0.1", False),
    ]:
        assert bool(pattern.match(text)) == ok, text


def test_object_properties_in_order_with_optional_members() -> None:
    gbnf = compile_json_schema(
        {
            "type": "object",
            "properties": {"a": {"type": "string"}, "b": {"type": "integer"}, "c": {"type": "boolean"}},
            "required": ["b"],
        }
    )
    assert gbnf.startswith("root ::= ")
    assert '"\\"a\\":"' in gbnf and '"\\"b\\":"' in gbnf and '"\\"c\\":"' in gbnf
    # The whitespace rule allows at most one space: no rambling in whitespace.
    assert 'ws ::= " "?' in gbnf


def test_pretty_whitespace_is_bounded() -> None:
    gbnf = compile_json_schema({"type": "object", "properties": {"a": {"type": "null"}}}, whitespace="pretty")
    assert '"\\n" " "{0,16}' in gbnf


def test_json_object_grammar_is_a_generic_object() -> None:
    gbnf = json_object_grammar()
    assert gbnf.startswith("root ::= object")
    assert "value ::= object | array | string | number | boolean | null" in gbnf


def test_shared_subschemas_share_a_rule() -> None:
    item = {"type": "string", "enum": ["x", "y"]}
    gbnf = compile_json_schema(
        {"type": "object", "properties": {"p": item, "q": item}, "required": ["p", "q"]}
    )
    assert gbnf.count('"\\"x\\"" | "\\"y\\""') == 1


@pytest.mark.parametrize(
    ("schema", "keyword", "path"),
    [
        ({"type": "object", "patternProperties": {"^a": {}}}, "patternProperties", "$.patternProperties"),
        ({"if": {"type": "string"}, "then": {}}, "if", "$.if"),
        ({"type": "object", "properties": {"x": {"not": {"type": "null"}}}}, "not", "$.properties.x.not"),
        ({"type": "object", "dependentSchemas": {}}, "dependentSchemas", "$.dependentSchemas"),
        ({"type": "array", "prefixItems": [{}]}, "prefixItems", "$.prefixItems"),
        ({"type": "array", "uniqueItems": True}, "uniqueItems", "$.uniqueItems"),
        ({"type": "object", "properties": {"d": {"type": "datetime"}}}, '"datetime"', "$.properties.d.type"),
        ({"type": ["string", "blob"]}, '"blob"', "$.type[1]"),
        ({"type": "string", "format": "email"}, '"email"', "$.format"),
        ({"$ref": "https://example.com/schema.json"}, "$ref", "$.$ref"),
        ({"$ref": "#/$defs/missing"}, "does not resolve", "$.$ref"),
        ({"allOf": [{"type": "string"}, {"maxLength": 3}]}, "allOf", "$.allOf"),
        ({"type": "number", "exclusiveMinimum": 0}, "exclusiveMinimum", "$.exclusiveMinimum"),
        ({"type": "number", "minimum": 0.5}, "minimum", "$.minimum"),
        ({"type": "string", "pattern": "(?=a)b"}, "pattern", "$.pattern"),
        ({"type": "string", "pattern": "\\bword"}, "pattern", "$.pattern"),
        ({"type": "object", "properties": {}, "required": ["ghost"]}, "ghost", "$.required"),
    ],
)
def test_unsupported_features_name_keyword_and_path(schema: dict[str, Any], keyword: str, path: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        compile_json_schema(schema)
    assert info.value.param == "response_format"
    assert keyword in info.value.message
    assert info.value.message.endswith(f"at {path}")


def test_recursion_without_a_finite_instance_is_refused() -> None:
    schema = {
        "$defs": {
            "node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/node"}}, "required": ["next"]}
        },
        "$ref": "#/$defs/node",
    }
    with pytest.raises(InvalidRequest, match="recursive \\$ref"):
        compile_json_schema(schema)


def test_recursion_is_unrolled_to_a_bounded_depth() -> None:
    schema = {
        "$defs": {
            "node": {
                "type": "object",
                "properties": {
                    "v": {"type": "integer"},
                    "kids": {"type": "array", "items": {"$ref": "#/$defs/node"}},
                },
                "required": ["v", "kids"],
            }
        },
        "$ref": "#/$defs/node",
    }
    shallow = compile_json_schema(schema, max_recursion=1)
    deep = compile_json_schema(schema, max_recursion=4)
    assert "empty-array" in shallow  # the deepest level may only have no children
    assert len(deep) > len(shallow)


def test_param_is_configurable_for_tool_schemas() -> None:
    with pytest.raises(InvalidRequest) as info:
        compile_json_schema({"not": {}}, param="tools")
    assert info.value.param == "tools"


@pytest.mark.parametrize("pattern", ["a{2,1}", "(ab", "[\\p{L}]", "a*?", "\\1", "x{5000}"])
def test_regex_subset_refuses_unsafe_constructs(pattern: str) -> None:
    with pytest.raises(RegexUnsupported):
        regex_to_gbnf(pattern)


def test_regex_unanchored_allows_surrounding_text() -> None:
    assert regex_to_gbnf("ab").count("*") == 2
    assert "*" not in regex_to_gbnf("^ab$")


def test_nullable_enum_admits_null() -> None:
    gbnf = compile_json_schema({"enum": ["a"], "nullable": True})
    assert '"\\"a\\"" | "null"' in gbnf
