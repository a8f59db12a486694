"""The Grafana dashboard in docs/grafana: valid JSON whose queries name only metrics the operator
exports, and every metric it exports on some panel; and every metric documented."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.metrics import MetricWrapperBase

from backlog_operator.controller.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "docs" / "grafana" / "backlog-operator.json"
OPERATIONS = ROOT / "docs" / "operations.md"

# PromQL's words that are not metric names: its functions (always followed by a parenthesis,
# which is how they are told apart), and its keywords.
KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or"}
    | {"unless", "offset", "inf", "nan"}
)
# Series a sample of each family type is exposed as.
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
}


def exported() -> dict[str, str]:
    """Every series name the operator's registry exposes -> its family's name."""
    names: dict[str, str] = {}
    for family in Metrics().registry.collect():
        for suffix in SUFFIXES[family.type]:
            names[family.name + suffix] = family.name
    return names


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # label values
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges
    text = re.sub(r"\b(?:by|without|on|ignoring)\s*\([^)]*\)", "", text)  # grouping labels
    text = re.sub(r"\$\{?\w+\}?", "", text)  # Grafana's variables
    names = set()
    # Not the unit of a duration or a number's exponent (`5m`, `1e3`).
    for match in re.finditer(r"(?<![\w:.])[A-Za-z_:][\w:]*", text):
        following = text[match.end() :].lstrip()
        if following.startswith("(") or match.group().lower() in KEYWORDS:
            continue
        names.add(match.group())
    return names


def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for item in items:
        yield item
        yield from panels(item.get("panels") or [])


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return loaded


def queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, PromQL) of every panel target and every query variable."""
    found = [
        (panel["title"], target["expr"])
        for panel in panels(dashboard["panels"])
        for target in panel.get("targets") or []
    ]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]["query"]
            labels = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", query)
            assert labels, f"variable {variable['name']}: {query}"
            found.append((f"${variable['name']}", labels.group(1)))
    return found


def test_the_parser_finds_metric_names_and_nothing_else() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le, step) (rate(a_bucket{x=~"$ns", y="b c"}'
        "[$__rate_interval]))) / on (le) group_left sum(b_total offset 5m) + c"
    )
    assert metric_names(expr) == {"a_bucket", "b_total", "c"}


def test_the_dashboard_is_a_grafana_dashboard(dashboard: dict[str, Any]) -> None:
    assert dashboard["uid"] and dashboard["title"] == "backlog-operator"
    assert isinstance(dashboard["schemaVersion"], int)
    ids = [panel["id"] for panel in panels(dashboard["panels"])]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels(dashboard["panels"]):
        assert {"x", "y", "w", "h"} <= panel["gridPos"].keys(), panel["title"]
        if panel["type"] != "row":
            assert panel["targets"], f"{panel['title']}: no query"
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
    names = [variable["name"] for variable in dashboard["templating"]["list"]]
    assert names == ["datasource", "namespace"]


def test_every_query_reads_only_metrics_the_operator_exports(dashboard: dict[str, Any]) -> None:
    known = exported()
    for where, expr in queries(dashboard):
        names = metric_names(expr)
        assert names, f"{where}: no metric in {expr!r}"
        unknown = names - known.keys()
        assert not unknown, f"{where}: {sorted(unknown)} are not exported ({expr!r})"


def test_every_metric_the_operator_exports_is_on_the_dashboard(dashboard: dict[str, Any]) -> None:
    known = exported()
    shown = {known[name] for _, expr in queries(dashboard) for name in metric_names(expr)}
    missing = set(known.values()) - shown
    assert not missing, f"metrics on no panel of {DASHBOARD.name}: {sorted(missing)}"


def test_every_metric_is_documented_with_its_labels() -> None:
    """docs/operations.md's table names each metric, its type and its labels, and the metrics
    module's own table each metric."""
    import backlog_operator.controller.metrics as module

    metrics = Metrics()
    # A labelled metric shows its label names in no sample until it has one: ask the metric.
    label_names = {
        metric._name: set(metric._labelnames)
        for metric in vars(metrics).values()
        if isinstance(metric, MetricWrapperBase)
    }
    text = OPERATIONS.read_text(encoding="utf-8")
    for family in metrics.registry.collect():
        name = family.name + ("_total" if family.type == "counter" else "")
        labels = label_names.get(family.name, set()) | {
            label for sample in family.samples for label in sample.labels if label != "le"
        }
        row = re.search(rf"^\| `{name}` \| (\w+) \|([^|]*)\|", text, flags=re.MULTILINE)
        assert row, f"{name} is not in {OPERATIONS.name}'s table"
        assert row.group(1) == family.type, name
        assert set(re.findall(r"`(\w+)`", row.group(2))) == labels, name
        assert f"`{name}" in (module.__doc__ or ""), f"{name} is not in the module's table"
