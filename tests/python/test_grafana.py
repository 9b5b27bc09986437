"""integrations/grafana/chakra-dashboard.json queries exactly the metrics the core emits:
names from chakra-service/src/telemetry.rs (Prometheus naming: a histogram is queried
through ``_bucket``), labels from the ``counter!``/``histogram!``/``gauge!`` calls that
record them, or the ``counter_key``/``histogram_key`` calls that build their keys once."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TELEMETRY = ROOT / "chakra-service" / "src" / "telemetry.rs"
RECORDERS = [ROOT / "chakra-layers" / "src" / "metrics.rs", ROOT / "chakra-layers" / "src" / "batch.rs",
             ROOT / "chakra-layers" / "src" / "retry.rs", ROOT / "chakra-service" / "src" / "pool.rs"]
DASHBOARD = ROOT / "integrations" / "grafana" / "chakra-dashboard.json"
PROMQL_WORDS = {"sum", "by", "rate", "histogram_quantile", "clamp_min", "le", "label_values"}


def emitted() -> dict[str, str]:
    """Constant name → metric name, from telemetry.rs."""
    found = dict(re.findall(r'pub const (\w+): &str = "(\w+)";', TELEMETRY.read_text()))
    assert found, "no metric names found in telemetry.rs"
    return found


def recorded_labels(constants: dict[str, str]) -> dict[str, tuple[str, set[str]]]:
    """Metric name → (kind, label names) from the macros that record it."""
    recorded: dict[str, tuple[str, set[str]]] = {}
    for path in RECORDERS:
        if not path.exists():
            continue
        calls = r"\b(counter|histogram|gauge)(?:!|_key)\(\s*(?:telemetry::)?(\w+)([^;]*)"
        for kind, constant, rest in re.findall(calls, path.read_text()):
            if constant in constants:
                name = constants[constant]
                # `"label" => value` in a macro, `("label", value)` in a key.
                labels = set(re.findall(r'"(\w+)"\s*=>', rest)) | set(re.findall(r'\(\s*"(\w+)"\s*,', rest))
                recorded.setdefault(name, (kind, set()))[1].update(labels)
    return recorded


def expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    exprs += [v["definition"] for v in dashboard["templating"]["list"] if v.get("definition")]
    return exprs


def queried(expr: str) -> list[tuple[str, set[str]]]:
    """(metric, labels selected or grouped by) pairs of one PromQL expression."""
    out = []
    groups = {label.strip() for group in re.findall(r"by \(([^)]*)\)", expr) for label in group.split(",")}
    for metric, selector in re.findall(r"\b(chakra_\w+)(\{[^}]*\})?", expr):
        labels = set(re.findall(r"(\w+)\s*=~?", selector)) | groups
        out.append((metric, labels))
    for metric, label in re.findall(r"label_values\((chakra_\w+),\s*(\w+)\)", expr):
        out.append((metric, {label}))
    return out


def test_dashboard_uses_exactly_the_emitted_metric_names() -> None:
    constants = emitted()
    recorded = recorded_labels(constants)
    names = set(constants.values())
    used = set()
    for expr in expressions():
        for metric, labels in queried(expr):
            kind = recorded.get(metric.removesuffix("_bucket"), ("", set()))[0]
            if metric.endswith("_bucket"):
                base = metric.removesuffix("_bucket")
                assert kind == "histogram", f"{metric}: _bucket of something that is not a histogram"
            else:
                base = metric
                assert kind != "histogram", f"{metric} is a histogram: query {metric}_bucket"
            assert base in names, f"{metric} in the dashboard is not emitted (telemetry.rs: {sorted(names)})"
            used.add(base)
            allowed = recorded.get(base, ("", set()))[1] | {"le", "instance", "job"}
            assert labels - PROMQL_WORDS <= allowed | {"le"}, f"{metric}: labels {labels - allowed} are not recorded"
    required = {constants[c] for c in ("QUERY_DURATION", "QUERIES", "QUERY_ERRORS", "POOL_CONNECTIONS", "POOL_WAITING")}
    assert required <= used, f"the dashboard does not show {required - used}"


def test_latency_panels_show_p50_p95_p99_by_table_and_operation() -> None:
    exprs = expressions()
    for quantile in ("0.5", "0.95", "0.99"):
        (expr,) = [e for e in exprs if e.startswith(f"histogram_quantile({quantile},")]
        assert "by (le, table, operation)" in expr
    pool = " ".join(e for e in exprs if "chakra_pool" in e)
    assert 'state="in_use"' in pool and 'state="idle"' in pool and "chakra_pool_waiting" in pool
