"""Just enough PromQL reading for the deployment tests: the metric names and label matchers an
expression uses, after Grafana's variables are given values Prometheus accepts."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$__interval": "15s",
    "$__range": "5m",
}
KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset",
    "and", "or", "unless", "inf", "nan",
}  # fmt: skip
PROMETHEUS_SERIES = {"up"}
"""Series Prometheus makes itself for every target."""
TARGET_LABELS = {"job", "instance", "namespace", "pod", "service", "container", "endpoint"}
"""Labels Prometheus (or the operator's relabelling) adds to every scraped series."""

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_TOKEN = re.compile(r"\d+(?:\.\d+)?(?:e[+-]?\d+)?[a-zA-Z]*|[a-zA-Z_:][a-zA-Z0-9_:]*")
_SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}")
_MATCHER = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"(?:[^"\\]|\\.)*"')
LABEL_VALUES = re.compile(r"^\s*label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,\s*([a-zA-Z_]\w*)\s*\)\s*$")


def concrete(expr: str) -> str:
    """``expr`` with Grafana's variables replaced: intervals by durations, ``$model`` (used in
    regex matchers) by ``.*``."""
    for name, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(name, value)
    return re.sub(r"\$\{?[a-zA-Z_]\w*\}?", ".*", expr)


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects (not its functions, keywords or labels)."""
    m = LABEL_VALUES.match(expr)
    if m:
        return {m.group(1)}
    text = _STRING.sub('""', concrete(expr))
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = _GROUPING.sub(" ", text)
    names = set()
    for token in _TOKEN.finditer(text):
        word = token.group(0)
        if word[0].isdigit() or word.lower() in KEYWORDS:
            continue
        if text[token.end() :].lstrip().startswith("("):
            continue  # a function or an aggregation
        names.add(word)
    return names


def label_matchers(expr: str) -> Iterator[tuple[str, str]]:
    """(metric, label) for every label matcher written in a selector of ``expr``."""
    for selector in _SELECTOR.finditer(concrete(expr)):
        for matcher in _MATCHER.finditer(selector.group(2)):
            yield selector.group(1), matcher.group(1)


@dataclass(frozen=True)
class Expression:
    where: str
    expr: str


def rule_file(path: Path) -> dict[str, Any]:
    loaded = yaml.safe_load(path.read_text())
    if not isinstance(loaded, dict):
        raise ValueError(f"{path} is not a rule file")
    return loaded


def rule_expressions(path: Path) -> list[Expression]:
    out = []
    for group in rule_file(path)["groups"]:
        for rule in group["rules"]:
            name = rule.get("alert") or rule.get("record")
            out.append(Expression(f"{path.name}: {group['name']}/{name}", str(rule["expr"])))
    return out


def recorded_names(path: Path) -> set[str]:
    return {r["record"] for g in rule_file(path)["groups"] for r in g["rules"] if "record" in r}


def dashboard_expressions(path: Path) -> list[Expression]:
    board = json.loads(path.read_text())
    out = []

    def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for p in items:
            yield p
            yield from panels(p.get("panels", []))

    for panel in panels(board["panels"]):
        for target in panel.get("targets", []):
            out.append(Expression(f"{path.name}: panel {panel['title']!r} {target['refId']}", target["expr"]))
    for var in board.get("templating", {}).get("list", []):
        if var.get("type") == "query":
            query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
            out.append(Expression(f"{path.name}: variable {var['name']}", str(query)))
    return out
