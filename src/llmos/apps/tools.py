"""Tools the dialogue assistant may call, each with the JSON Schema of its arguments.

A tool's result is JSON (what the assistant sends back in a ``role: "tool"`` message). The
built-ins: ``get_weather`` (a local fixture, ``apps/data/weather.json``), ``calculator`` (the
safe parser of :mod:`llmos.apps.calculator`) and ``search_catalog`` (the sample catalog).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from llmos.apps.calculator import CalculatorError, evaluate, format_number
from llmos.apps.catalog import Catalog, load_catalog, words


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]
    """The JSON Schema of the arguments object."""
    run: Callable[[Mapping[str, Any]], Any]

    def spec(self) -> dict[str, Any]:
        """The tool in OpenAI's ``tools`` shape."""
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }

    def problems(self, arguments: Any) -> list[str]:
        """How ``arguments`` violate the tool's schema; empty when valid."""
        validator = Draft202012Validator(self.parameters)
        return [e.message for e in validator.iter_errors(arguments)]


class ToolRegistry:
    """Tools by name; :meth:`call` validates arguments and never raises for a tool's failure
    (the model is told what went wrong, as OpenAI's tool loop expects)."""

    def __init__(self, tools: Iterable[Tool] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        for tool in tools:
            self.register(tool)

    def register(self, tool: Tool) -> None:
        self._tools[tool.name] = tool

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def get(self, name: str) -> Tool:
        return self._tools[name]

    @property
    def names(self) -> list[str]:
        return list(self._tools)

    def specs(self) -> list[dict[str, Any]]:
        return [t.spec() for t in self._tools.values()]

    def call(self, name: str, arguments: str | Mapping[str, Any]) -> dict[str, Any]:
        """Run tool ``name`` on ``arguments`` (a JSON string or an object): ``{"result": ...}`` or
        ``{"error": "..."}``."""
        tool = self._tools.get(name)
        if tool is None:
            return {"error": f"unknown tool {name!r}; the tools are: {', '.join(self._tools)}"}
        try:
            args = json.loads(arguments) if isinstance(arguments, str) else dict(arguments)
        except ValueError as exc:
            return {"error": f"the arguments are not JSON: {exc}"}
        problems = tool.problems(args)
        if problems:
            return {"error": f"invalid arguments: {problems[0]}"}
        try:
            return {"result": tool.run(args)}
        except (CalculatorError, LookupError, ValueError) as exc:
            return {"error": str(exc)}


def load_weather(path: str | Path | None = None) -> dict[str, Any]:
    if path is None:
        text = resources.files("llmos.apps").joinpath("data/weather.json").read_text(encoding="utf-8")
    else:
        text = Path(path).read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def weather_tool(fixture: Mapping[str, Any] | None = None) -> Tool:
    data = fixture if fixture is not None else load_weather()
    cities: Mapping[str, Any] = data["cities"]

    def run(args: Mapping[str, Any]) -> Any:
        key = " ".join(words(str(args["city"])))
        if key not in cities:
            known = ", ".join(c["city"] for c in cities.values())
            raise LookupError(f"no weather data for {args['city']!r}; known cities: {known}")
        return cities[key]

    return Tool(
        name="get_weather",
        description="Current weather and tomorrow's forecast for a city.",
        parameters={
            "type": "object",
            "properties": {"city": {"type": "string", "minLength": 1, "maxLength": 60}},
            "required": ["city"],
            "additionalProperties": False,
        },
        run=run,
    )


def calculator_tool() -> Tool:
    def run(args: Mapping[str, Any]) -> Any:
        value = evaluate(str(args["expression"]))
        return {"expression": args["expression"], "value": format_number(value)}

    return Tool(
        name="calculator",
        description="Evaluate an arithmetic expression, e.g. '(12.5 * 4) / 3' or 'sqrt(2) ^ 2'.",
        parameters={
            "type": "object",
            "properties": {"expression": {"type": "string", "minLength": 1, "maxLength": 100}},
            "required": ["expression"],
            "additionalProperties": False,
        },
        run=run,
    )


def catalog_tool(catalog: Catalog | None = None) -> Tool:
    shop = catalog if catalog is not None else load_catalog()

    def run(args: Mapping[str, Any]) -> Any:
        found = shop.search(str(args["query"]), limit=int(args.get("max_results", 3)))
        return [
            {"id": i.id, "title": i.title, "author": i.author, "genre": i.genre, "price": i.price_text}
            for i in found
        ]

    return Tool(
        name="search_catalog",
        description="Search the bookshop's catalog by title, author, genre or topic.",
        parameters={
            "type": "object",
            "properties": {
                "query": {"type": "string", "minLength": 1, "maxLength": 100},
                "max_results": {"type": "integer", "minimum": 1, "maximum": 5},
            },
            "required": ["query"],
            "additionalProperties": False,
        },
        run=run,
    )


def default_tools(catalog: Catalog | None = None) -> ToolRegistry:
    """The weather fixture, the calculator and the catalog search."""
    return ToolRegistry([weather_tool(), calculator_tool(), catalog_tool(catalog)])
