"""Requests per second of ``GET /users/{id}`` (examples/fastapi_app.py's "get user by id")
for Chakra vs SQLAlchemy async vs Tortoise vs raw asyncpg (issue 6, "Performance").

    .venv/bin/python benches/python/fastapi/run.py             # 2 passes, 10 s per app
    .venv/bin/python benches/python/fastapi/run.py --passes 3 --duration 10

Each app (``app_*.py``, same shape: GET /users/{id} -> the user as JSON through a pydantic
``response_model``, a pool of 10) runs as its own uvicorn process on 127.0.0.1: one worker,
``--loop asyncio`` (no uvloop), ``--http h11``, no access log. Load: ``wrk`` with 2 threads,
50 connections, random ids (random_ids.lua), a short warm-up, then the measured run.
A fifth app, ``nodb``, serves the same route and response_model from a fixed dict with
no database: the ceiling FastAPI + uvicorn + pydantic allow on this machine; and a sixth,
``chakra_nosession``, is app_chakra.py without ``SessionDep`` (the query on the pool). Neither
is one of the four compared for the targets; they show where each request's time goes.
The app order is reversed on every other pass. Before a measured run each app's answers are
checked (same user as asyncpg's for a few ids, 404 for a missing id) and after it wrk's
non-2xx/socket-error counts must be zero, so a fast wrong answer cannot win.

The table ``bench_fastapi_users`` (100k rows) is recreated at start and dropped at the end,
on ``DATABASE_URL`` (default ``postgresql://postgres@127.0.0.1:5432/test``).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import asyncpg  # noqa: E402

from bench_common import DATABASE_URL, TABLE, UserOut  # noqa: E402

APPS = ["chakra", "asyncpg", "sqlalchemy", "tortoise", "chakra_nosession", "nodb"]
CHECKED = {"chakra", "asyncpg", "sqlalchemy", "tortoise", "chakra_nosession"}  # nodb (the no-database ceiling) answers a fixed user
LABELS = {"nodb": "(no db: ceiling)", "chakra_nosession": "(chakra, no SessionDep)"}
ROWS = 100_000
CHECK_IDS = [1, 2, 777, 54321, ROWS]


# ---------------------------------------------------------------- the table

async def create_table() -> None:
    conn = await asyncpg.connect(DATABASE_URL)
    try:
        await conn.execute(f"DROP TABLE IF EXISTS {TABLE}")
        await conn.execute(
            f"""CREATE TABLE {TABLE} (
                id integer PRIMARY KEY,
                email varchar(200) NOT NULL UNIQUE,
                name varchar(100) NOT NULL,
                public_id uuid NOT NULL,
                balance numeric(10, 2) NOT NULL,
                bio text,
                joined_at timestamptz NOT NULL)"""
        )
        await conn.execute(
            f"""INSERT INTO {TABLE}
                SELECT i, 'user' || i || '@example.com', 'User ' || i, md5(i::text)::uuid,
                       (i % 100000) / 100.0,
                       CASE WHEN i % 2 = 0 THEN NULL ELSE 'Bio of user ' || i END,
                       timestamptz '2024-01-01 00:00:00+00' + i * interval '1 minute'
                FROM generate_series(1, {ROWS}) AS i"""
        )
        await conn.execute(f"ANALYZE {TABLE}")
    finally:
        await conn.close()


async def drop_table() -> None:
    conn = await asyncpg.connect(DATABASE_URL)
    try:
        await conn.execute(f"DROP TABLE IF EXISTS {TABLE}")
    finally:
        await conn.close()


# ---------------------------------------------------------------- one server

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


class Server:
    def __init__(self, app: str) -> None:
        self.app = app
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = open(os.path.join("/tmp", f"bench_fastapi_{app}_{self.port}.log"), "w+")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", f"app_{app}:app", "--app-dir", HERE,
             "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
             "--loop", "asyncio", "--http", "h11", "--no-access-log", "--log-level", "warning"],
            stdout=self.log, stderr=subprocess.STDOUT, env={**os.environ, "DATABASE_URL": DATABASE_URL},
        )

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                if http_get(f"{self.base}/users/1")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        self.log.flush()
        self.log.seek(0)
        text = self.log.read()[-3000:]
        self.stop()
        raise RuntimeError(f"{self.app}: server not ready\n{text}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


# ---------------------------------------------------------------- checks and wrk

def user_at(base: str, i: int) -> UserOut:
    status, body = http_get(f"{base}/users/{i}")
    if status != 200:
        raise AssertionError(f"GET /users/{i}: {status} {body[:200]!r}")
    return UserOut.model_validate(json.loads(body))


def check(app: str, base: str, expected: dict[int, UserOut]) -> None:
    for i in CHECK_IDS:
        got = user_at(base, i)
        if got != expected[i]:
            raise AssertionError(f"{app}: /users/{i} = {got!r}, asyncpg says {expected[i]!r}")
    status, _ = http_get(f"{base}/users/{ROWS + 1}")
    if status != 404:
        raise AssertionError(f"{app}: missing id answered {status}, not 404")


UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def to_ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not m:
        raise ValueError(text)
    return float(m.group(1)) * UNITS[m.group(2)]


def wrk(base: str, seconds: int, connections: int, threads: int) -> dict[str, float]:
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "10s",
         "-s", os.path.join(HERE, "random_ids.lua"), base],
        capture_output=True, text=True, check=True, env={**os.environ, "BENCH_ROWS": str(ROWS)},
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = dict(re.findall(r"^\s+(50|99)(?:\.0+)?%\s+(\S+)", out, re.M))
    bad = sum(int(x) for x in re.findall(r"Non-2xx or 3xx responses:\s+(\d+)", out))
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = sum(int(x) for x in socket_errors.groups()) if socket_errors else 0
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    return {"rps": rps, "p50": to_ms(lat["50"]), "p99": to_ms(lat["99"]), "bad": bad,
            "errors": errors, "requests": requests}


# ---------------------------------------------------------------- the table

def loadavg() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def print_table(title: str, results: dict[str, dict[str, float]], load: str) -> None:
    base = results.get("asyncpg", {}).get("rps")
    print(f"\n{title}   (load average {load}, {os.cpu_count()} CPUs)")
    print(f"| {'app':<23} | {'req/s':>8} | {'p50 ms':>7} | {'p99 ms':>7} | {'vs asyncpg':>10} |")
    print(f"|{'-' * 25}|{'-' * 9}:|{'-' * 8}:|{'-' * 8}:|{'-' * 11}:|")
    for app in APPS:
        r = results.get(app)
        if r is None:
            continue
        ratio = f"{r['rps'] / base:.2f}x" if base else "-"
        label = LABELS.get(app, app)
        print(f"| {label:<23} | {r['rps']:>8.0f} | {r['p50']:>7.2f} | {r['p99']:>7.2f} | {ratio:>10} |")
    c = results.get("chakra")
    if c and base:
        within = c["rps"] >= 0.9 * base
        ahead = all(c["rps"] > results[o]["rps"] for o in ("sqlalchemy", "tortoise") if o in results)
        print(f"targets: chakra within 10% of asyncpg: {'MET' if within else 'NOT MET'} "
              f"({c['rps'] / base:.2f}x); ahead of SQLAlchemy and Tortoise: {'MET' if ahead else 'NOT MET'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--passes", type=int, default=2)
    parser.add_argument("--duration", type=int, default=10, help="seconds per measured wrk run")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of wrk before each measured run")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--apps", default=",".join(APPS))
    args = parser.parse_args()
    apps = [a for a in APPS if a in args.apps.split(",")]
    if shutil.which("wrk") is None:
        sys.exit("wrk not found (apt-get install -y wrk)")

    versions = {p: importlib.metadata.version(p) for p in
                ("chakra-orm", "fastapi", "uvicorn", "pydantic", "asyncpg", "sqlalchemy", "tortoise-orm")}
    print(f"python {sys.version.split()[0]}; " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    print(f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s (+{args.warmup}s warm-up), "
          f"uvicorn 1 worker, loop asyncio, http h11, pool 10; load average at start {loadavg()}")

    asyncio.run(create_table())
    per_pass: list[dict[str, dict[str, float]]] = []
    expected: dict[int, UserOut] = {}
    try:
        for p in range(args.passes):
            order = apps if p % 2 == 0 else apps[::-1]
            results: dict[str, dict[str, float]] = {}
            loads = [loadavg()]
            for app in order:
                server = Server(app)
                try:
                    server.wait_ready()
                    if not expected and app in CHECKED:
                        # the reference answers: asyncpg's, read straight from the table
                        ref = Server("asyncpg") if app != "asyncpg" else None
                        try:
                            src = server.base
                            if ref is not None:
                                ref.wait_ready()
                                src = ref.base
                            expected = {i: user_at(src, i) for i in CHECK_IDS}
                        finally:
                            if ref is not None:
                                ref.stop()
                    if app in CHECKED:
                        check(app, server.base, expected)
                    wrk(server.base, args.warmup, args.connections, args.threads)
                    r = wrk(server.base, args.duration, args.connections, args.threads)
                finally:
                    server.stop()
                if r["bad"] or r["errors"]:
                    raise AssertionError(f"{app}: {r['bad']} non-2xx responses, {r['errors']} socket errors")
                results[app] = r
                loads.append(loadavg())
                print(f"  pass {p + 1} {app:<16} {r['rps']:8.0f} req/s  p50 {r['p50']:.2f} ms  "
                      f"p99 {r['p99']:.2f} ms  ({r['requests']} requests, load {loads[-1]})", flush=True)
            per_pass.append(results)
            print_table(f"pass {p + 1} (order: {', '.join(order)})", results, f"{loads[0]} -> {loads[-1]}")
        if len(per_pass) > 1:
            median = {
                app: {k: statistics.median(pp[app][k] for pp in per_pass) for k in ("rps", "p50", "p99")}
                for app in apps
            }
            print_table(f"median of {len(per_pass)} passes", median, loadavg())
    finally:
        asyncio.run(drop_table())


if __name__ == "__main__":
    main()
