"""`chakra.serve_metrics`: the core's metrics reach Prometheus from a Python program, under
the names the Grafana dashboard queries. A process has one metrics recorder, so everything
is checked in one test."""

from __future__ import annotations

import re
import socket
import time
import urllib.request

import pytest

import chakra


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return str(response.read().decode())


def _selects(text: str) -> int:
    found = re.search(r'^chakra_queries_total\{operation="SELECT",table=""\} (\d+)$', text, re.M)
    return int(found.group(1)) if found else 0


def test_query_metrics_are_served_in_prometheus_format(database: chakra.Database) -> None:
    port = _free_port()
    chakra.serve_metrics(f"127.0.0.1:{port}")
    before = _selects(_scrape(port))
    for _ in range(3):
        assert database.fetchval_sync("SELECT 1") == 1
    with pytest.raises(chakra.Error):
        database.fetchval_sync("SELEC 1")
    time.sleep(1.3)  # pool gauges are sampled once a second

    text = _scrape(port)
    assert _selects(text) - before == 3, text
    assert 'chakra_query_errors_total{' in text and 'kind="query"' in text, text
    assert "chakra_query_duration_seconds_bucket{" in text, "latency must be a histogram with buckets"
    assert 'chakra_pool_connections{state="idle"}' in text, text

    with pytest.raises(chakra.ProgrammingError):
        chakra.serve_metrics(f"127.0.0.1:{_free_port()}")
