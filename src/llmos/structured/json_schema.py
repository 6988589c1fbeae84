"""Compile a JSON Schema into a GBNF grammar for llama.cpp's grammar sampler.

Supported (the subset OpenAI's strict structured outputs allows, and a little more):
``type`` (one or a list: object, array, string, number, integer, boolean, null), ``properties``,
``required``, ``additionalProperties`` (false, true, or a schema for a map without properties),
``enum``, ``const``, ``anyOf`` / ``oneOf`` (as alternation), ``allOf`` with one member,
``nullable``, ``items``, ``minItems`` / ``maxItems``, ``minLength`` / ``maxLength``, ``pattern``
(a safe regex subset, see :mod:`llmos.structured.regex`), ``format`` (date, time, date-time, uuid),
integer ``minimum`` / ``maximum`` / ``exclusiveMinimum`` / ``exclusiveMaximum``, number bounds that are
non-negative integers, and local ``$ref`` into ``$defs`` / ``definitions`` (recursion unrolled to a
bounded depth; branches that would go deeper are pruned). Annotations (``description``, ``title``,
``default``, ``examples``...) are ignored.

Anything else raises :class:`llmos.errors.InvalidRequest` naming the keyword and its JSON path.

Properties are generated in the schema's order; optional ones may be left out. Whitespace is
limited to one space (``compact``) or one newline plus a bounded indent (``pretty``) between
tokens, so a small model cannot ramble in whitespace.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal, NoReturn

from llmos.errors import InvalidRequest
from llmos.structured.gbnf import GrammarBuilder, literal, repeat
from llmos.structured.numbers import (
    UNBOUNDED_INTEGER,
    UNBOUNDED_NUMBER,
    integer_range,
    nonnegative_number_range,
)
from llmos.structured.regex import RegexUnsupported, regex_to_gbnf

Whitespace = Literal["compact", "pretty"]

ANNOTATIONS = frozenset(
    {
        "description",
        "title",
        "examples",
        "default",
        "$comment",
        "deprecated",
        "readOnly",
        "writeOnly",
        "$schema",
        "$id",
        "strict",
        "discriminator",
    }
)
SUPPORTED = frozenset(
    {
        "type",
        "properties",
        "required",
        "additionalProperties",
        "enum",
        "const",
        "anyOf",
        "oneOf",
        "allOf",
        "nullable",
        "items",
        "minItems",
        "maxItems",
        "minLength",
        "maxLength",
        "pattern",
        "format",
        "$ref",
        "$defs",
        "definitions",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
    }
)
TYPES = ("object", "array", "string", "number", "integer", "boolean", "null")
FORMATS = frozenset({"date", "time", "date-time", "uuid"})

STRING_CHAR = r'[^"\\\x7F\x00-\x1F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{4})'
_DATE = '[0-9]{4} "-" ("0" [1-9] | "1" [0-2]) "-" ("0" [1-9] | [12] [0-9] | "3" [01])'
_TIME = (
    '([01] [0-9] | "2" [0-3]) ":" [0-5] [0-9] ":" [0-5] [0-9] ("." [0-9]{1,6})? '
    '("Z" | [+-] ([01] [0-9] | "2" [0-3]) ":" [0-5] [0-9])'
)
_FORMAT_BODIES = {
    "date": _DATE,
    "time": _TIME,
    "date-time": f'{_DATE} "T" {_TIME}',
    "uuid": '[0-9a-f]{8} "-" [0-9a-f]{4} "-" [0-9a-f]{4} "-" [0-9a-f]{4} "-" [0-9a-f]{12}',
}
_WHITESPACE = {"compact": '" "?', "pretty": '(" " | "\\n" " "{0,16})?'}

DEFAULT_MAX_RECURSION = 3


def compile_json_schema(
    schema: Mapping[str, Any],
    *,
    param: str = "response_format",
    whitespace: Whitespace = "compact",
    max_recursion: int = DEFAULT_MAX_RECURSION,
) -> str:
    """The GBNF grammar whose sentences are JSON documents valid against ``schema``.

    Raises InvalidRequest (with ``param``) for an unsupported keyword, a malformed schema, or a
    recursive ``$ref`` that has no instance within ``max_recursion`` levels.
    """
    builder = GrammarBuilder()
    compiler = SchemaCompiler(
        builder, schema, param=param, whitespace=whitespace, max_recursion=max_recursion
    )
    builder.set_root(compiler.compile_root())
    return builder.render()


def json_object_grammar(*, whitespace: Whitespace = "compact") -> str:
    """GBNF for any JSON object (``response_format: {"type": "json_object"}``)."""
    builder = GrammarBuilder()
    compiler = SchemaCompiler(builder, {}, whitespace=whitespace)
    builder.set_root(compiler.generic_object())
    return builder.render()


class SchemaCompiler:
    """Compiles (parts of) one schema document into rules of a shared :class:`GrammarBuilder`.

    Several compilers may share one builder (one per tool function) so their rules combine
    into one grammar.
    """

    def __init__(
        self,
        builder: GrammarBuilder,
        document: Mapping[str, Any],
        *,
        param: str = "response_format",
        whitespace: Whitespace = "compact",
        max_recursion: int = DEFAULT_MAX_RECURSION,
        path: str = "$",
        name_hint: str = "",
    ) -> None:
        self._b = builder
        self._doc = document
        self._param = param
        self._ws_body = _WHITESPACE[whitespace]
        self._max_recursion = max_recursion
        self._root_path = path
        self._hint = name_hint
        self._ref_stack: list[str] = []
        self._ref_memo: dict[tuple[str, tuple[tuple[str, int], ...]], str | None] = {}

    # -- entry points -------------------------------------------------------------------------

    def compile_root(self) -> str:
        """A rule name matching the whole document's schema; raises if it has no finite instance."""
        if not isinstance(self._doc, Mapping):
            self._fail("the schema must be a JSON object", self._root_path)
        rule = self.compile(self._doc, self._root_path, self._hint or "root-value")
        if rule is None:
            self._fail("recursive $ref has no instance within the recursion bound", self._root_path)
        return rule

    def generic_value(self) -> str:
        if self._b.has("value"):
            return "value"
        value = self._b.reserve("value")
        obj, arr = self.generic_object(value), self._generic_array(value)
        self._b.define(
            value, f"{obj} | {arr} | {self._string()} | {self._number()} | {self._boolean()} | {self._null()}"
        )
        return value

    def generic_object(self, value: str | None = None) -> str:
        value = value or self.generic_value()
        ws, s = self._ws(), self._string()
        kv = f'{s} ":" {ws} {value}'
        return self._b.add("object", f'"{{" {ws} ({kv} ("," {ws} {kv})* {ws})? "}}"')

    # -- the recursive compiler ---------------------------------------------------------------

    def compile(self, schema: Any, path: str, hint: str) -> str | None:
        """A rule name for ``schema`` at ``path``; None when pruned by the recursion bound."""
        if schema is True or schema == {}:
            return self.generic_value()
        if not isinstance(schema, Mapping):
            self._fail("a schema must be a JSON object", path)
        for key in schema:
            if key not in SUPPORTED and key not in ANNOTATIONS:
                self._fail(f"unsupported JSON Schema keyword '{key}'", f"{path}.{key}")
        constraints = {k for k in schema if k in SUPPORTED and k not in ("$defs", "definitions")}

        if "$ref" in schema:
            self._only(schema, constraints, "$ref", path)
            return self._ref(schema["$ref"], f"{path}.$ref")
        if "allOf" in schema:
            self._only(schema, constraints, "allOf", path)
            members = schema["allOf"]
            if not isinstance(members, list) or len(members) != 1:
                self._fail(
                    "unsupported JSON Schema keyword 'allOf' with more than one member", f"{path}.allOf"
                )
            return self.compile(members[0], f"{path}.allOf[0]", hint)
        for key in ("anyOf", "oneOf"):
            if key in schema:
                self._only(schema, constraints, key, path)
                rule = self._any_of(schema[key], f"{path}.{key}", hint)
                if rule is not None and schema.get("nullable") is True:
                    rule = self._b.add(f"{hint}-nullable", f"{rule} | {self._null()}")
                return rule
        if "const" in schema:
            return self._b.add(f"{hint}-const", self._json_literal(schema["const"], f"{path}.const"))
        if "enum" in schema:
            values = schema["enum"]
            if not isinstance(values, list) or not values:
                self._fail("'enum' must be a non-empty array", f"{path}.enum")
            body = " | ".join(self._json_literal(v, f"{path}.enum[{i}]") for i, v in enumerate(values))
            if schema.get("nullable") is True and None not in values:
                body += ' | "null"'
            return self._b.add(f"{hint}-enum", body)

        types = self._types(schema, path)
        if schema.get("nullable") is True and "null" not in types:
            types.append("null")
        if not types:
            return self.generic_value()
        alternatives = [self._typed(t, schema, path, hint) for t in types]
        kept = [a for a in alternatives if a is not None]
        if not kept:
            return None
        if len(kept) == 1:
            return kept[0]
        return self._b.add(hint, " | ".join(kept))

    def _typed(self, kind: str, schema: Mapping[str, Any], path: str, hint: str) -> str | None:
        if kind == "object":
            return self._object(schema, path, hint)
        if kind == "array":
            return self._array(schema, path, hint)
        if kind == "string":
            return self._string_schema(schema, path, hint)
        if kind == "integer":
            return self._integer_schema(schema, path, hint)
        if kind == "number":
            return self._number_schema(schema, path, hint)
        if kind == "boolean":
            return self._boolean()
        return self._null()

    def _types(self, schema: Mapping[str, Any], path: str) -> list[str]:
        raw = schema.get("type")
        if raw is None:
            keys = set(schema)
            if keys & {"properties", "additionalProperties", "required"}:
                return ["object"]
            if keys & {"items", "minItems", "maxItems"}:
                return ["array"]
            if keys & {"minLength", "maxLength", "pattern", "format"}:
                return ["string"]
            if keys & {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"}:
                return ["number"]
            return []
        names = raw if isinstance(raw, list) else [raw]
        out: list[str] = []
        for i, name in enumerate(names):
            where = f"{path}.type" if not isinstance(raw, list) else f"{path}.type[{i}]"
            if name not in TYPES:
                self._fail(f"unsupported JSON Schema type {json.dumps(name)}", where)
            if name not in out:
                out.append(name)
        if not out:
            self._fail("'type' must not be empty", f"{path}.type")
        return out

    # -- objects and arrays -------------------------------------------------------------------

    def _object(self, schema: Mapping[str, Any], path: str, hint: str) -> str | None:
        props = schema.get("properties", {})
        required = schema.get("required", [])
        extra = schema.get("additionalProperties", True)
        if not isinstance(props, Mapping):
            self._fail("'properties' must be an object", f"{path}.properties")
        if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
            self._fail("'required' must be an array of strings", f"{path}.required")
        missing = [r for r in required if r not in props]
        if missing:
            self._fail(f"required property {missing[0]!r} is not in 'properties'", f"{path}.required")
        ws = self._ws()
        if not props:
            if extra is False:
                return self._b.add("empty-object", f'"{{" {ws} "}}"')
            if extra is True or extra == {}:
                return self.generic_object()
            value = self.compile(extra, f"{path}.additionalProperties", f"{hint}-value")
            if value is None:
                return self._b.add("empty-object", f'"{{" {ws} "}}"')
            kv = f'{self._string()} ":" {ws} {value}'
            return self._b.add(f"{hint}-map", f'"{{" {ws} ({kv} ("," {ws} {kv})* {ws})? "}}"')
        if not isinstance(extra, bool | Mapping):
            self._fail("'additionalProperties' must be a boolean or a schema", f"{path}.additionalProperties")
        items: list[tuple[str, bool]] = []
        for name, sub in props.items():
            rule = self.compile(sub, f"{path}.properties.{name}", f"{hint}-{name}")
            is_required = name in required
            if rule is None:
                if is_required:
                    return None
                continue
            items.append((f"{literal(json.dumps(name, ensure_ascii=False) + ':')} {ws} {rule}", is_required))
        return self._b.add(hint, f'"{{" {ws} {self._members(items, hint)} "}}"')

    def _members(self, items: list[tuple[str, bool]], hint: str) -> str:
        """Members in order, optional ones skippable, commas only between present members."""
        ws = self._ws()
        after: str = '""'
        tails: list[str] = ['""']
        for kv, is_required in reversed(items[1:]):
            part = f'"," {ws} {kv} {after}' if is_required else f'("," {ws} {kv})? {after}'
            after = self._b.add(f"{hint}-rest", part) if len(items) > 2 else part
            tails.append(after)
        tails.append('""')
        tails.reverse()
        # tails[i]: members i.. when something was already written.
        first = '""'
        for i in range(len(items) - 1, -1, -1):
            kv, is_required = items[i]
            with_this = f"{kv} {tails[i + 1]} {ws}"
            first = with_this if is_required else f"({with_this} | {first})"
        return first

    def _array(self, schema: Mapping[str, Any], path: str, hint: str) -> str | None:
        lo = self._count(schema, "minItems", path) or 0
        hi = self._count(schema, "maxItems", path)
        ws = self._ws()
        item = self.compile(schema.get("items", True), f"{path}.items", f"{hint}-item")
        if item is None or hi == 0:
            return self._b.add("empty-array", f'"[" {ws} "]"') if lo == 0 else None
        rest = repeat(f'"," {ws} {item}', max(lo - 1, 0), None if hi is None else hi - 1)
        body = f"{item} {rest} {ws}"
        if lo == 0:
            body = f"({body})?"
        return self._b.add(hint, f'"[" {ws} {body} "]"')

    def _generic_array(self, value: str) -> str:
        ws = self._ws()
        return self._b.add("array", f'"[" {ws} ({value} ("," {ws} {value})* {ws})? "]"')

    # -- scalars ------------------------------------------------------------------------------

    def _string_schema(self, schema: Mapping[str, Any], path: str, hint: str) -> str:
        fmt, pattern = schema.get("format"), schema.get("pattern")
        lo = self._count(schema, "minLength", path)
        hi = self._count(schema, "maxLength", path)
        if fmt is not None:
            if fmt not in FORMATS:
                self._fail(f"unsupported JSON Schema format {json.dumps(fmt)}", f"{path}.format")
            if pattern is not None or lo is not None or hi is not None:
                self._fail("unsupported: 'format' combined with 'pattern' or a length", f"{path}.format")
            return self._b.add(f"{fmt}-string", f'"\\"" {_FORMAT_BODIES[fmt]} "\\""')
        if pattern is not None:
            if lo is not None or hi is not None:
                self._fail("unsupported: 'pattern' combined with 'minLength'/'maxLength'", f"{path}.pattern")
            if not isinstance(pattern, str):
                self._fail("'pattern' must be a string", f"{path}.pattern")
            try:
                body = regex_to_gbnf(pattern)
            except RegexUnsupported as exc:
                self._fail(f"unsupported JSON Schema 'pattern' {pattern!r}: {exc}", f"{path}.pattern")
            return self._b.add(f"{hint}-pattern", f'"\\"" ({body}) "\\""')
        if lo is None and hi is None:
            return self._string()
        if hi is not None and lo is not None and lo > hi:
            self._fail("'minLength' exceeds 'maxLength'", f"{path}.minLength")
        char = self._b.add("char", STRING_CHAR)
        return self._b.add(f"{hint}-string", f'"\\"" {repeat(char, lo or 0, hi)} "\\""')

    def _integer_schema(self, schema: Mapping[str, Any], path: str, hint: str) -> str:
        lo, hi = self._bound(schema, "minimum", path), self._bound(schema, "maximum", path)
        xlo, xhi = (
            self._bound(schema, "exclusiveMinimum", path),
            self._bound(schema, "exclusiveMaximum", path),
        )
        lows = [b for b in (_ceil(lo), _above(xlo)) if b is not None]
        highs = [b for b in (_floor(hi), _below(xhi)) if b is not None]
        low, high = (max(lows) if lows else None), (min(highs) if highs else None)
        if low is None and high is None:
            return self._b.add("integer", UNBOUNDED_INTEGER)
        if low is not None and high is not None and low > high:
            self._fail("the integer bounds leave no value", f"{path}.minimum")
        return self._b.add(f"{hint}-integer", integer_range(low, high))

    def _number_schema(self, schema: Mapping[str, Any], path: str, hint: str) -> str:
        for key in ("exclusiveMinimum", "exclusiveMaximum"):
            if key in schema:
                self._fail(f"unsupported JSON Schema keyword '{key}' on a number", f"{path}.{key}")
        lo, hi = self._bound(schema, "minimum", path), self._bound(schema, "maximum", path)
        if lo is None and hi is None:
            return self._number()
        if lo is None or lo < 0 or lo != int(lo) or (hi is not None and hi != int(hi)):
            key = "minimum" if lo is None or lo < 0 or lo != int(lo) else "maximum"
            self._fail(
                f"unsupported JSON Schema keyword '{key}' on a number (only non-negative integer bounds)",
                f"{path}.{key}",
            )
        if hi is not None and hi < lo:
            self._fail("the number bounds leave no value", f"{path}.minimum")
        return self._b.add(
            f"{hint}-number", nonnegative_number_range(int(lo), None if hi is None else int(hi))
        )

    # -- combinators and references -----------------------------------------------------------

    def _any_of(self, members: Any, path: str, hint: str) -> str | None:
        if not isinstance(members, list) or not members:
            self._fail("must be a non-empty array of schemas", path)
        alts = [self.compile(m, f"{path}[{i}]", f"{hint}-{i}") for i, m in enumerate(members)]
        kept = [a for a in alts if a is not None]
        if not kept:
            return None
        return kept[0] if len(kept) == 1 else self._b.add(hint, " | ".join(kept))

    def _ref(self, ref: Any, path: str) -> str | None:
        if not isinstance(ref, str) or not ref.startswith("#"):
            self._fail(f"unsupported $ref {json.dumps(ref)} (only local '#/...' references)", path)
        depth = self._ref_stack.count(ref)
        if depth > self._max_recursion:
            return None
        key = (ref, tuple(sorted((r, self._ref_stack.count(r)) for r in set(self._ref_stack))))
        if key in self._ref_memo:
            return self._ref_memo[key]
        target = self._resolve(ref, path)
        self._ref_stack.append(ref)
        try:
            name = ref.rsplit("/", 1)[-1] or "root-ref"
            rule = self.compile(target, ref.replace("/", "."), f"{self._hint}-{name}" if self._hint else name)
        finally:
            self._ref_stack.pop()
        self._ref_memo[key] = rule
        return rule

    def _resolve(self, ref: str, path: str) -> Any:
        node: Any = self._doc
        for raw in ref[1:].split("/")[1:] if ref != "#" else []:
            part = raw.replace("~1", "/").replace("~0", "~")
            if isinstance(node, Mapping) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                self._fail(f"$ref {json.dumps(ref)} does not resolve", path)
        return node

    # -- helpers ------------------------------------------------------------------------------

    def _ws(self) -> str:
        return self._b.add("ws", self._ws_body)

    def _string(self) -> str:
        char = self._b.add("char", STRING_CHAR)
        return self._b.add("string", f'"\\"" {char}* "\\""')

    def _number(self) -> str:
        return self._b.add("number", UNBOUNDED_NUMBER)

    def _boolean(self) -> str:
        return self._b.add("boolean", '"true" | "false"')

    def _null(self) -> str:
        return self._b.add("null", '"null"')

    def _json_literal(self, value: Any, path: str) -> str:
        try:
            text = json.dumps(value, ensure_ascii=False, separators=(", ", ": "), allow_nan=False)
        except (TypeError, ValueError):
            self._fail("not a JSON value", path)
        return literal(text)

    def _count(self, schema: Mapping[str, Any], key: str, path: str) -> int | None:
        value = schema.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            self._fail(f"'{key}' must be a non-negative integer", f"{path}.{key}")
        return value

    def _bound(self, schema: Mapping[str, Any], key: str, path: str) -> float | None:
        value = schema.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            self._fail(f"'{key}' must be a number", f"{path}.{key}")
        return float(value)

    def _only(self, schema: Mapping[str, Any], constraints: set[str], keyword: str, path: str) -> None:
        others = sorted(constraints - {keyword})
        if others and not (keyword in ("anyOf", "oneOf") and others == ["nullable"]):
            self._fail(f"unsupported: '{keyword}' combined with '{others[0]}'", f"{path}.{others[0]}")

    def _fail(self, message: str, path: str) -> NoReturn:
        raise InvalidRequest(f"{message} at {path}", param=self._param)


def _ceil(value: float | None) -> int | None:
    if value is None:
        return None
    return int(value) if value == int(value) else int(value) + (1 if value > 0 else 0)


def _floor(value: float | None) -> int | None:
    if value is None:
        return None
    return int(value) if value == int(value) or value > 0 else int(value) - 1


def _above(value: float | None) -> int | None:
    """The least integer strictly greater than ``value``."""
    floor = _floor(value)
    return None if floor is None else floor + 1


def _below(value: float | None) -> int | None:
    """The greatest integer strictly less than ``value``."""
    ceil = _ceil(value)
    return None if ceil is None else ceil - 1
