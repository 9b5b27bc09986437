"""The async/sync bridge, raw SQL, direct connections, configuration and errors."""

from __future__ import annotations

import asyncio
import datetime as dt
import decimal
import os
import subprocess
import sys
import textwrap
import threading
import time
import uuid

import pytest

import chakra
from conftest import DATABASE_URL, backend_pids_in_transaction, recreate, settled


async def test_raw_queries_return_rows_as_mappings() -> None:
    rows = await chakra.fetch("SELECT $1::int8 AS a, $2::text AS b UNION ALL SELECT 2, NULL", 1, "x")
    assert rows == [{"a": 1, "b": "x"}, {"a": 2, "b": None}]
    assert await chakra.fetchrow("SELECT 1 AS one WHERE false") is None
    assert await chakra.fetchrow("SELECT 1 AS one") == {"one": 1}
    assert await chakra.fetchval("SELECT $1::text || '!'", "hi") == "hi!"
    assert await chakra.fetchval("SELECT pg_sleep(0)") is None


def test_sync_twins_work_without_an_event_loop() -> None:
    assert chakra.fetchval_sync("SELECT 40 + $1::int", 2) == 42
    assert chakra.fetch_sync("SELECT generate_series(1, 3) AS n") == [{"n": 1}, {"n": 2}, {"n": 3}]


async def test_raw_parameters_round_trip_every_python_type() -> None:
    values = [
        True,
        -(2**62),
        1.5,
        "héllo",
        b"\x00\xff",
        dt.datetime(2024, 5, 6, 7, 8, 9, 123456),
        dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=dt.timezone(dt.timedelta(hours=2))),
        dt.date(2024, 2, 29),
        dt.time(23, 59, 1, 5),
        uuid.UUID("12345678-1234-5678-1234-567812345678"),
        decimal.Decimal("12345678901234567890.123456789"),
        [1, 2, 3],
        {"a": [1, "b", None, True, 2.5]},
    ]
    casts = ["bool", "int8", "float8", "text", "bytea", "timestamp", "timestamptz", "date", "time", "uuid",
             "numeric", "int8[]", "jsonb"]
    sql = "SELECT " + ", ".join(f"${i + 1}::{cast} AS c{i}" for i, cast in enumerate(casts))
    row = await chakra.fetchrow(sql, *values)
    assert row is not None
    got = list(row.values())
    expected = list(values)
    expected[6] = values[6].astimezone(dt.timezone.utc)  # type: ignore[union-attr]
    assert got == expected
    assert got[6].tzinfo == dt.timezone.utc


async def test_numeric_beyond_decimal_precision_keeps_every_digit() -> None:
    big = "123456789012345678901234567890.123456789"
    assert await chakra.fetchval(f"SELECT {big}::numeric") == decimal.Decimal(big)
    assert str(await chakra.fetchval("SELECT 'NaN'::numeric")) == "NaN"


async def test_unsupported_parameter_is_a_data_error_before_sending() -> None:
    with pytest.raises(chakra.DataError, match="cannot send"):
        await chakra.fetchval("SELECT $1", object())
    with pytest.raises(chakra.DataError, match="64-bit"):
        await chakra.fetchval("SELECT $1::int8", 2**70)


async def test_server_errors_map_to_the_hierarchy() -> None:
    with pytest.raises(chakra.ProgrammingError) as info:
        await chakra.fetch("SELEC 1")
    assert info.value.code == "42601"
    assert isinstance(info.value, chakra.Error)
    with pytest.raises(chakra.DataError) as data:
        await chakra.fetchval("SELECT 1 / 0")
    assert data.value.code == "22012"


async def test_integrity_error_names_the_constraint() -> None:
    async with chakra.connect(DATABASE_URL) as conn:
        await conn.execute("CREATE TEMP TABLE core_unique (email text CONSTRAINT core_unique_email UNIQUE)")
        await conn.execute("INSERT INTO core_unique VALUES ($1)", "a@x")
        with pytest.raises(chakra.IntegrityError) as info:
            await conn.execute("INSERT INTO core_unique VALUES ($1)", "a@x")
    assert info.value.constraint == "core_unique_email"
    assert info.value.code == "23505"
    assert "a@x" not in str(info.value)  # row values stay in .detail, out of logs
    assert info.value.detail and "a@x" in info.value.detail


async def test_direct_connection_bypasses_the_pool_and_has_transactions() -> None:
    pool_pid = await chakra.fetchval("SELECT pg_backend_pid()")
    async with chakra.connect(DATABASE_URL) as conn:
        pid = await conn.fetchval("SELECT pg_backend_pid()")
        assert await conn.fetchval("SELECT pg_backend_pid()") == pid
        assert pid != pool_pid
        await conn.execute("CREATE TEMP TABLE core_direct (n int)")
        with pytest.raises(RuntimeError):
            async with conn.transaction():
                await conn.execute("INSERT INTO core_direct VALUES (1)")
                raise RuntimeError("roll back")
        async with conn.transaction():
            await conn.execute("INSERT INTO core_direct VALUES (2)")
        assert await conn.fetch("SELECT n FROM core_direct") == [{"n": 2}]
    with pytest.raises(chakra.ProgrammingError, match="closed"):
        await conn.fetchval("SELECT 1")
    with chakra.connect(DATABASE_URL) as sync_conn:
        assert sync_conn.fetchval_sync("SELECT 7") == 7


async def test_connect_to_a_bad_url_raises_config_or_operational_errors() -> None:
    with pytest.raises(chakra.ConfigError) as info:
        await chakra.connect("mysql://nope")
    assert info.value.key == "database.url"
    with pytest.raises(chakra.OperationalError):
        await chakra.connect("postgresql://postgres@127.0.0.1:1/none?connect_timeout=2")


async def test_tls_is_set_in_the_url_as_with_libpq() -> None:
    # Read and checked when the database is configured, not at the first connect.
    with pytest.raises(chakra.ConfigError) as info:
        chakra.Database("postgresql://db.example.com/app?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem")
    assert info.value.key == "database.url" and "/nonexistent/ca.pem" in str(info.value)
    with pytest.raises(chakra.ConfigError, match="sslmode=optional: must be one of disable, allow"):
        chakra.Database("postgresql://db.example.com/app?sslmode=optional")
    # The test command's throwaway cluster offers TLS, its certificate signed by its own CA.
    url, ca = os.environ.get("CHAKRA_THROWAWAY_URL"), os.environ.get("CHAKRA_THROWAWAY_CA")
    if os.environ.get("CI"):
        assert url and ca, "run the tests through scripts/test"
    if url and ca:
        async with chakra.connect(f"{url}?sslmode=verify-full&sslrootcert={ca}") as conn:
            assert await conn.fetchval("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()") is True
        async with chakra.connect(f"{url}?sslmode=disable") as conn:
            assert await conn.fetchval("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()") is False
        # `allow`: without TLS, unless the server turns that down (as it does chakra_tls_only).
        tls_only = url.replace("postgres@", "chakra_tls_only@", 1)
        with pytest.raises(chakra.OperationalError, match="no encryption"):
            await chakra.connect(f"{tls_only}?sslmode=disable")
        for who, encrypted in ((url, False), (tls_only, True)):
            async with chakra.connect(f"{who}?sslmode=allow") as conn:
                assert await conn.fetchval("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()") is encrypted


async def test_sslrootcert_system_trusts_the_roots_openssl_would(monkeypatch: pytest.MonkeyPatch) -> None:
    # As libpq 16: the system's roots, which SSL_CERT_FILE moves; verify-full by default.
    with pytest.raises(chakra.ConfigError, match="sslrootcert=system goes with"):
        chakra.Database("postgresql://db.example.com/app?sslmode=require&sslrootcert=system")
    url, ca = os.environ.get("CHAKRA_THROWAWAY_URL"), os.environ.get("CHAKRA_THROWAWAY_CA")
    if not (url and ca):
        assert not os.environ.get("CI"), "run the tests through scripts/test"
        return
    monkeypatch.setenv("SSL_CERT_FILE", ca)
    async with chakra.connect(f"{url}?sslrootcert=system") as conn:
        assert await conn.fetchval("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()") is True
    # Reached by a name its certificate was not issued for: refused, so the name was checked.
    port = url.rsplit(":", 1)[1].split("/")[0]
    elsewhere = f"postgresql://postgres@db.invalid:{port}/postgres?hostaddr=127.0.0.1&sslrootcert=system"
    with pytest.raises(chakra.OperationalError, match="not valid for name"):
        await chakra.connect(elsewhere)


def test_bad_configuration_names_the_key() -> None:
    with pytest.raises(chakra.ConfigError) as info:
        chakra.Database(DATABASE_URL, max_connections=0)
    assert info.value.key == "pool.max_connections"
    with pytest.raises(chakra.ConfigError) as info:
        chakra.Database(DATABASE_URL, acquire_timeout="soon")
    assert info.value.key == "pool.acquire_timeout"
    with pytest.raises(chakra.ConfigError) as info:
        chakra.Database(DATABASE_URL, max_conections=3)
    assert info.value.key == "max_conections"
    with pytest.raises(chakra.ConfigError) as info:
        chakra.Database(DATABASE_URL, statement_cache_capacity=0)
    assert info.value.key == "database.statement_cache_capacity"
    with pytest.raises(chakra.ConfigError) as info:
        chakra.Database(DATABASE_URL, max_lifetime="a while")
    assert info.value.key == "pool.max_lifetime"
    db = chakra.Database(DATABASE_URL, acquire_timeout=1.5, idle_timeout="10m", max_lifetime="1h", max_connections=3)
    assert db.status()["max_size"] == 3


class Stamp(chakra.Model):
    __tablename__ = "core_stamps"
    id = chakra.Field(chakra.Integer, primary_key=True)
    at = chakra.Field(chakra.DateTime(timezone=True))


async def test_a_time_zone_reads_the_parts_of_instants_in_it() -> None:
    recreate(Stamp)
    instant = dt.datetime(2001, 9, 9, 1, 46, 40, tzinfo=dt.timezone.utc)
    await Stamp.objects.create(at=instant)
    tokyo = chakra.Database(DATABASE_URL, time_zone="Asia/Tokyo")
    assert await tokyo.fetchval("SHOW TimeZone") == "Asia/Tokyo"
    # 01:46:40 UTC is 10:46:40 in Tokyo, the same day.
    assert await Stamp.objects.using(tokyo).filter(at__hour=10).count() == 1
    assert await Stamp.objects.using(tokyo).filter(at__hour=1).count() == 0
    assert (await Stamp.objects.using(tokyo).get()).at == instant, "the same instant, whatever the zone"
    with pytest.raises(chakra.ConfigError) as info:
        chakra.Database(DATABASE_URL, time_zone=9)
    assert info.value.key == "database.time_zone"
    with pytest.raises(chakra.ConfigError, match="not a time zone name") as info:
        chakra.Database(DATABASE_URL, time_zone="Asia/ Tokyo")
    mars = chakra.Database(DATABASE_URL, time_zone="Mars/Olympus")
    with pytest.raises(chakra.ConfigError, match="the server does not know the time zone `Mars/Olympus`") as info:
        await mars.fetchval("SELECT 1")
    assert info.value.key == "database.time_zone"


async def test_a_connection_past_max_lifetime_is_replaced() -> None:
    db = chakra.Database(DATABASE_URL, max_connections=1, max_lifetime=dt.timedelta(milliseconds=200))
    first = await db.fetchval("SELECT pg_backend_pid()")
    await asyncio.sleep(0.5)
    assert await db.fetchval("SELECT pg_backend_pid()") != first


async def test_the_statement_cache_capacity_bounds_prepared_statements_per_connection() -> None:
    db = chakra.Database(DATABASE_URL, max_connections=1, statement_cache_capacity=2)
    async with chakra.Session(db) as session:
        for k in range(6):
            assert await session.fetchval(f"SELECT $1::int8 + {k}", 1) == 1 + k
        prepared = "SELECT count(*) FROM pg_prepared_statements WHERE NOT from_sql"
        assert await session.fetchval(prepared) == 2


def test_default_database_comes_from_chakra_toml_then_environment(tmp_path: os.PathLike[str]) -> None:
    script = textwrap.dedent(
        """
        import chakra
        print(chakra.default_database().url)
        print(chakra.fetchval_sync("SELECT 1"))
        """
    )
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CHAKRA_DATABASE_URL")}
    env["DATABASE_URL"] = DATABASE_URL
    out = subprocess.run([sys.executable, "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True, check=True)
    url, one = out.stdout.split()
    assert one == "1"
    assert url.split("@")[-1] == DATABASE_URL.split("@")[-1]

    (tmp_path / "chakra.toml").write_text("[pool]\nmax_connections = \"many\"\n")  # type: ignore[operator]
    bad = subprocess.run([sys.executable, "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert bad.returncode != 0
    assert "ConfigError" in bad.stderr and "pool.max_connections" in bad.stderr


async def test_cancelling_a_task_mid_query_cancels_the_statement() -> None:
    task = asyncio.ensure_future(chakra.fetchval("SELECT pg_sleep(30)"))
    await asyncio.sleep(0.3)
    assert any("pg_sleep(30)" in str(r["query"]) for r in await asyncio.to_thread(backend_pids_in_transaction))
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await settled() == []
    assert await chakra.fetchval("SELECT 1") == 1


async def test_wait_for_timeout_cancels_like_a_task() -> None:
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(chakra.fetchval("SELECT pg_sleep(30)"), 0.2)
    assert await settled() == []


async def test_the_gil_is_released_while_a_query_runs() -> None:
    progress = 0
    stop = threading.Event()

    def spin() -> None:
        nonlocal progress
        while not stop.is_set():
            progress += 1

    thread = threading.Thread(target=spin)
    thread.start()
    try:
        before = progress
        await chakra.fetchval("SELECT pg_sleep(0.3)")
        during_async = progress - before
        before = progress
        await asyncio.to_thread(chakra.fetchval_sync, "SELECT pg_sleep(0.3)")
        during_sync = progress - before
    finally:
        stop.set()
        thread.join()
    # A thread starved of the GIL for 0.3 s would barely move (one switch interval).
    assert during_async > 10_000
    assert during_sync > 10_000


def test_sync_calls_from_many_threads_at_once() -> None:
    results: list[int] = []
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for _ in range(5):
                results.append(chakra.fetchval_sync("SELECT $1::int * 2", n))
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(results) == sorted(n * 2 for n in range(8) for _ in range(5))


async def test_sync_call_inside_a_running_loop_works(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CHAKRA_DEV", raising=False)
    # piccolo #522: a sync call from a thread whose loop is running must not deadlock.
    assert chakra.fetchval_sync("SELECT 5") == 5


async def test_sync_call_inside_a_running_loop_warns_in_dev_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHAKRA_DEV", "1")
    with pytest.warns(chakra.SyncInAsyncWarning) as record:
        assert chakra.fetchval_sync("SELECT 6") == 6
    assert record[0].filename == __file__


def test_sync_call_outside_a_loop_does_not_warn(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHAKRA_DEV", "1")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert chakra.fetchval_sync("SELECT 7") == 7


def test_python_dev_mode_turns_the_warning_on() -> None:
    script = textwrap.dedent(
        """
        import asyncio, warnings, chakra
        async def main():
            with warnings.catch_warnings(record=True) as w:
                warnings.simplefilter("always")
                chakra.fetchval_sync("SELECT 1")
            print([type(x.message).__name__ for x in w])
        asyncio.run(main())
        """
    )
    env = dict(os.environ, DATABASE_URL=DATABASE_URL)
    env.pop("CHAKRA_DEV", None)
    out = subprocess.run([sys.executable, "-X", "dev", "-c", script], env=env, capture_output=True, text=True, check=True)
    assert "SyncInAsyncWarning" in out.stdout


def test_awaiting_outside_an_event_loop_is_a_clear_error() -> None:
    op = chakra._core.raw(chakra.default_database()._core, "SELECT 1", [], "val")
    with pytest.raises(RuntimeError, match="no running event loop"):
        op.__await__().__next__()


async def test_many_concurrent_awaits_complete() -> None:
    results = await asyncio.gather(*(chakra.fetchval("SELECT $1::int", i) for i in range(500)))
    assert results == list(range(500))


async def test_each_event_loop_gets_its_own_completion_queue() -> None:
    def in_new_loop() -> int:
        return asyncio.run(chakra.fetchval("SELECT 11"))  # type: ignore[no-any-return]

    assert await asyncio.to_thread(in_new_loop) == 11
    assert await chakra.fetchval("SELECT 12") == 12
    for _ in range(3):
        assert await asyncio.to_thread(in_new_loop) == 11


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_fork_rebuilds_the_runtime_and_reopens_pools() -> None:
    assert chakra.fetchval_sync("SELECT 1") == 1  # the pool is open in the parent
    parent_pid = chakra.fetchval_sync("SELECT pg_backend_pid()")
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 1
        try:
            child_backend = chakra.fetchval_sync("SELECT pg_backend_pid()")
            ok = asyncio.run(chakra.fetchval("SELECT 21")) == 21 and child_backend != parent_pid
            os.write(write, b"ok" if ok else b"bad")
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    answer = os.read(read, 10)
    os.close(read)
    assert os.waitstatus_to_exitcode(status) == 0
    assert answer == b"ok"
    assert chakra.fetchval_sync("SELECT 2") == 2


def test_keyboard_interrupt_stops_a_blocking_call() -> None:
    script = textwrap.dedent(
        """
        import signal, threading, time, os, chakra
        threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
        t = time.time()
        try:
            chakra.fetchval_sync("SELECT pg_sleep(20)")
        except KeyboardInterrupt:
            print("interrupted", round(time.time() - t))
        """
    )
    env = dict(os.environ, DATABASE_URL=DATABASE_URL)
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=15)
    assert out.stdout.strip() == "interrupted 1" or out.stdout.strip() == "interrupted 0", out.stderr


def test_timing_of_sync_call_is_not_held_by_the_check_interval() -> None:
    start = time.perf_counter()
    for _ in range(20):
        chakra.fetchval_sync("SELECT 1")
    assert (time.perf_counter() - start) / 20 < 0.05
