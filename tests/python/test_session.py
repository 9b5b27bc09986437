"""Sessions: identity map, dirty tracking, commit/rollback, savepoints, connection reuse,
scoping of model queries, cancellation mid-transaction."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

import chakra
from chakra import Field, Integer, Session, String, Text
from conftest import DATABASE_URL, recreate, settled


class Account(chakra.Model):
    __tablename__ = "sess_accounts"
    id = Field(Integer, primary_key=True)
    owner = Field(String(50))
    balance = Field(Integer, default=0)
    note = Field(Text, default="")


AUDIT_SQL = [
    "DROP TABLE IF EXISTS sess_audit",
    "CREATE TABLE sess_audit (what text)",
    """CREATE OR REPLACE FUNCTION sess_audit_fn() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN INSERT INTO sess_audit VALUES (TG_ARGV[0]); RETURN NULL; END $$""",
    # Fires once per UPDATE statement, and once per statement whose SET names the column.
    "CREATE TRIGGER sess_update AFTER UPDATE ON sess_accounts FOR EACH STATEMENT EXECUTE FUNCTION sess_audit_fn('UPDATE')",
    "CREATE TRIGGER sess_owner AFTER UPDATE OF owner ON sess_accounts FOR EACH STATEMENT EXECUTE FUNCTION sess_audit_fn('owner')",
    "CREATE TRIGGER sess_balance AFTER UPDATE OF balance ON sess_accounts FOR EACH STATEMENT EXECUTE FUNCTION sess_audit_fn('balance')",
    "CREATE TRIGGER sess_note AFTER UPDATE OF note ON sess_accounts FOR EACH STATEMENT EXECUTE FUNCTION sess_audit_fn('note')",
]


@pytest.fixture(autouse=True)
def accounts() -> None:
    recreate(Account)
    for sql in AUDIT_SQL:
        chakra.execute_sync(sql)
    Account.objects.bulk_create_sync([Account(owner="ann", balance=100), Account(owner="ben", balance=50)])


def audit() -> list[str]:
    return [r["what"] for r in chakra.fetch_sync("SELECT what FROM sess_audit")]


async def test_commit_inserts_and_fills_primary_keys() -> None:
    async with Session() as session:
        acc = Account(owner="cat", balance=7)
        session.add(acc)
        assert acc.id is None
        await session.commit()
        assert acc.id == 3
        assert acc in session
    assert (await Account.objects.get(id=3)).owner == "cat"


async def test_changing_one_attribute_updates_only_that_column() -> None:
    async with Session() as session:
        ann = await session.get(Account, 1)
        assert ann is not None
        ann.owner = "anne"
        assert session.is_modified(ann)
        assert Account._meta.schema.changed_fields(ann) == ["owner"]  # type: ignore[union-attr]
        # Meanwhile another connection changes another column of the same row.
        other = chakra.Database(DATABASE_URL)
        await other.execute("UPDATE sess_accounts SET balance = 999 WHERE id = 1")
        await other.execute("DELETE FROM sess_audit")
        other.close()
        assert await session.flush() == 1
        await session.commit()
        assert not session.is_modified(ann)
        assert await session.flush() == 0
    assert sorted(audit()) == ["UPDATE", "owner"]
    row = await chakra.fetchrow("SELECT owner, balance FROM sess_accounts WHERE id = 1")
    assert row == {"owner": "anne", "balance": 999}


async def test_unchanged_objects_send_nothing() -> None:
    chakra.execute_sync("DELETE FROM sess_audit")
    async with Session() as session:
        accounts = await Account.objects.all()
        accounts[0].owner = accounts[0].owner  # same value: not a change
        assert await session.flush() == 0
    assert audit() == []


async def test_identity_map_gives_one_object_per_row() -> None:
    async with Session() as session:
        a = await session.get(Account, 1)
        b = await Account.objects.get(id=1)
        c = (await Account.objects.filter(owner="ann"))[0]
        d = await Account.objects.order_by("id").first()
        assert a is b is c is d
        a.balance = 5  # type: ignore[union-attr]
        # A query does not overwrite the session's (changed) instance.
        e = await Account.objects.get(owner="ann")
        assert e is a and e.balance == 5
    outside_1 = await Account.objects.get(id=1)
    outside_2 = await Account.objects.get(id=1)
    assert outside_1 is not outside_2 and outside_1 == outside_2


async def test_get_returns_none_for_a_missing_row() -> None:
    async with Session() as session:
        assert await session.get(Account, 404) is None
        assert session.get_sync(Account, 404) is None


async def test_exception_rolls_back() -> None:
    with pytest.raises(RuntimeError):
        async with Session() as session:
            acc = await session.get(Account, 1)
            acc.balance = 0  # type: ignore[union-attr]
            session.add(Account(owner="dan"))
            await session.flush()
            raise RuntimeError("boom")
    assert await Account.objects.count() == 2
    assert (await Account.objects.get(id=1)).balance == 100


async def test_explicit_rollback_restores_saved_state() -> None:
    async with Session() as session:
        ann = await session.get(Account, 1)
        assert ann is not None
        new = Account(owner="eve")
        session.add(new)
        ann.balance = 1
        await session.flush()
        assert new.id == 3
        await session.rollback()
        # Inserted in the rolled-back transaction: never saved again; changed: dirty again.
        assert new.id is None
        assert session.is_modified(ann) and ann.balance == 1
        await session.commit()
    assert (await Account.objects.get(id=1)).balance == 1
    assert await Account.objects.count() == 2


async def test_savepoints_roll_back_only_their_part() -> None:
    async with Session() as session:
        async with session.begin():
            session.add(Account(owner="outer"))
            with pytest.raises(ValueError):
                async with session.begin() as inner:
                    assert inner.is_savepoint
                    session.add(Account(owner="inner"))
                    await session.flush()
                    raise ValueError("undo inner")
            async with session.begin():
                session.add(Account(owner="kept"))
    owners = sorted(await Account.objects.values_list("owner", flat=True))
    assert owners == ["ann", "ben", "kept", "outer"]


async def test_explicit_transaction_commits_at_block_end() -> None:
    async with Session() as session:
        async with session.begin():
            acc = await session.get(Account, 2)
            acc.balance += 1  # type: ignore[union-attr]
        # Committed: another connection sees it while the session is still open.
        assert await chakra.Database(DATABASE_URL).fetchval("SELECT balance FROM sess_accounts WHERE id = 2") == 51


async def test_session_reuses_one_connection() -> None:
    async with Session() as session:
        pid = await session.fetchval("SELECT pg_backend_pid()")
        await Account.objects.filter(owner="ann").all()
        assert await chakra.fetchval("SELECT pg_backend_pid()") == pid
        assert await session.fetchval("SELECT pg_backend_pid()") == pid
        inner = await asyncio.gather(*(chakra.fetchval("SELECT pg_backend_pid()") for _ in range(5)))
        assert set(inner) == {pid}
    outside = {await chakra.fetchval("SELECT pg_backend_pid()") for _ in range(3)}
    assert outside  # pooled, may or may not be the same backend


async def test_queries_outside_a_session_take_pooled_connections() -> None:
    db = chakra.Database(DATABASE_URL, max_connections=4)
    pids = await asyncio.gather(*(db.fetchval("SELECT pg_backend_pid() FROM pg_sleep(0.1)") for _ in range(4)))
    assert len(set(pids)) == 4
    db.close()


async def test_model_queries_see_the_sessions_uncommitted_writes() -> None:
    async with Session() as session:
        session.add(Account(owner="fay"))
        # Autoflush: the pending insert is written before the query runs.
        assert await Account.objects.filter(owner="fay").count() == 1
        assert await chakra.Database(DATABASE_URL).fetchval("SELECT count(*) FROM sess_accounts WHERE owner = 'fay'") == 0
    assert await Account.objects.filter(owner="fay").count() == 1


async def test_delete_and_refresh() -> None:
    async with Session() as session:
        ben = await session.get(Account, 2)
        assert ben is not None
        await session.delete(ben)
        await session.commit()
        assert await session.get(Account, 2) is None
        ann = await session.get(Account, 1)
        ann.balance = 12345  # type: ignore[union-attr]
        await chakra.Database(DATABASE_URL).execute("UPDATE sess_accounts SET owner = 'ANN' WHERE id = 1")
        await session.refresh(ann)  # type: ignore[arg-type]
        assert ann.owner == "ANN" and ann.balance == 100  # type: ignore[union-attr]
        assert not session.is_modified(ann)  # type: ignore[arg-type]
        with pytest.raises(Account.DoesNotExist):
            await session.refresh(ben)
    assert await Account.objects.count() == 1


def test_sync_session() -> None:
    with Session() as session:
        acc = session.get_sync(Account, 1)
        assert acc is not None
        acc.owner = "sync"
        session.add(Account(owner="new"))
        session.commit_sync()
        assert acc.owner == "sync"  # readable after commit
        with session.begin():
            acc.balance = 3
        assert Account.objects.filter(owner="sync").values_list_sync("balance", flat=True) == [3]
        with pytest.raises(KeyError):
            with session.begin():
                acc.balance = 4
                session.flush_sync()
                raise KeyError("x")
        session.refresh_sync(acc)
        assert acc.balance == 3
    assert Account.objects.count_sync() == 3


def test_sessions_in_threads_are_independent() -> None:
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            with Session() as session:
                session.add(Account(owner=f"t{n}"))
                session.commit_sync()
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert Account.objects.filter(owner__startswith="t").count_sync() == 6


async def test_cancelled_task_mid_transaction_leaves_no_transaction_or_lock() -> None:
    holding = asyncio.Event()

    async def transfer() -> None:
        async with Session() as session:
            acc = await session.get(Account, 1)
            acc.balance -= 10  # type: ignore[union-attr]
            await session.flush()  # row lock taken, transaction open
            holding.set()
            await session.fetchval("SELECT pg_sleep(30)")

    task = asyncio.ensure_future(transfer())
    await holding.wait()
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await settled() == []
    locks = await chakra.fetchval(
        "SELECT count(*) FROM pg_locks WHERE relation = 'sess_accounts'::regclass AND pid <> pg_backend_pid()"
    )
    assert locks == 0
    # The row is writable at once (no lock held) and the change was rolled back.
    assert await chakra.Database(DATABASE_URL, query_timeout=2).execute(
        "UPDATE sess_accounts SET note = 'free' WHERE id = 1") == 1
    assert (await Account.objects.get(id=1)).balance == 100


async def test_select_for_update_begins_the_sessions_transaction_and_holds_the_lock() -> None:
    # Outside a session the locks would go at once: refused, as Django does.
    with pytest.raises(chakra.ProgrammingError, match="transaction"):
        await Account.objects.select_for_update().get(id=1)
    with pytest.raises(chakra.ProgrammingError, match="nowait and skip_locked"):
        Account.objects.select_for_update(nowait=True, skip_locked=True)

    async with Session() as holder:
        # A locking read begins the session's transaction (as a write would).
        acc = await Account.objects.select_for_update().get(id=1)
        assert await holder.fetchval("SELECT now() = statement_timestamp()") is False
        async with Session() as other:
            with pytest.raises(chakra.OperationalError) as info:
                await Account.objects.select_for_update(nowait=True).filter(id=1).all()
            assert info.value.code == "55P03"  # lock_not_available
        async with Session() as other:
            free = await Account.objects.select_for_update(skip_locked=True).order_by("id").all()
            assert [a.owner for a in free] == ["ben"]
            assert await Account.objects.select_for_update(skip_locked=True, no_key=True).count() == 1
        acc.balance -= 30  # type: ignore[union-attr]
        await holder.commit()
    assert (await Account.objects.get(id=1)).balance == 70
    # Grouped and aggregated over locked rows: the locking read begins the transaction.
    async with Session() as holder:
        notes = await Account.objects.select_for_update().values("note").annotate(n=chakra.Count("*"), top=chakra.Max("balance"))
        assert notes == [{"note": "", "n": 2, "top": 70}]
        assert await holder.fetchval("SELECT now() = statement_timestamp()") is False
        assert await Account.objects.select_for_update().aggregate(total=chakra.Sum("balance")) == {"total": 120}
    sql, _ = Account.objects.select_for_update(skip_locked=True).sql()
    assert sql.endswith(" FOR UPDATE SKIP LOCKED")


async def test_f_expressions_update_from_the_row_and_lose_no_concurrent_change() -> None:
    from chakra import F

    one = Account.objects.filter(id=1)
    # 30 concurrent decrements of one row, each on a pooled connection of its own.
    counts = await asyncio.gather(*(one.update(balance=F("balance") - 1) for _ in range(30)))
    assert counts == [1] * 30
    assert (await Account.objects.get(id=1)).balance == 70
    # Fields, numbers (on either side) and plain values combine in one UPDATE.
    assert await Account.objects.update(balance=2 * F("balance") - F("id") * 10, note="doubled") == 2
    rows = {a.owner: (a.balance, a.note) for a in await Account.objects.all()}
    assert rows == {"ann": (130, "doubled"), "ben": (80, "doubled")}
    assert one.update_sync(balance=F("balance") / 2) == 1
    assert one.get_sync().balance == 65
    assert repr(F("balance") * 2 + 1) == "((F('balance') * 2) + 1)"
    with pytest.raises(chakra.FieldError, match="blance"):
        await one.update(balance=F("blance") + 1)
    with pytest.raises(TypeError):
        F("balance") + "1"  # type: ignore[operator]


async def test_an_update_by_query_refreshes_the_instances_the_session_holds() -> None:
    from chakra import F

    async with Session() as session:
        ann = await Account.objects.get(owner="ann")
        ann.note = "pending"  # flushed before the update
        assert await Account.objects.filter(balance__gte=50).update(balance=F("balance") + 5) == 2
        assert (ann.balance, ann.note) == (105, "pending") and not session.is_modified(ann)
        with pytest.raises(ValueError):
            async with session.begin():
                await Account.objects.filter(owner="ann").update(balance=0)
                assert ann.balance == 0
                raise ValueError("undo the savepoint")
        # The savepoint's rollback puts back what the instance held, as saved.
        assert ann.balance == 105 and not session.is_modified(ann)
        ann.balance += 1  # saves what changed since the refresh
    assert (await Account.objects.get(owner="ann")).balance == 106
    async with Session() as session:
        ann = await Account.objects.get(owner="ann")
        ann.note = "mine"
        await Account.objects.filter(owner="ann").update(balance=F("balance") * 2)
        assert ann.balance == 212
        await session.rollback()
        # The values the update read back go with it; the user's own change stays pending.
        assert (ann.balance, ann.note) == (106, "mine") and session.is_modified(ann)
    assert (await Account.objects.get(owner="ann")).note == "mine"
    # Outside a session, or with no instance held, nothing is read back.
    assert await Account.objects.update(note="x") == 2


async def test_a_delete_by_query_lets_go_of_the_instances_the_session_holds() -> None:
    async with Session() as session:
        ann, ben = await Account.objects.order_by("owner")
        assert await Account.objects.filter(owner="ann").delete() == 1
        assert ann not in session and ben in session
        ann.balance = 5  # a deleted row's instance: nothing to save
        assert await Account.objects.filter(owner="ann").first() is None
    assert await Account.objects.values_list("owner", flat=True) == ["ben"]


async def test_get_or_create_finds_creates_and_survives_a_concurrent_creator() -> None:
    await chakra.execute("CREATE UNIQUE INDEX sess_accounts_owner ON sess_accounts (owner)")
    ann, created = await Account.objects.get_or_create(owner="ann", defaults={"balance": 1})
    assert (ann.id, ann.balance, created) == (1, 100, False)
    cid, created = await Account.objects.get_or_create(owner="cid", defaults={"balance": lambda: 7})
    assert (cid.owner, cid.balance, created) == ("cid", 7, True) and cid.id is not None
    # Ten tasks race to create the same row: one creates it, the rest get it.
    results = await asyncio.gather(*(Account.objects.get_or_create(owner="dee") for _ in range(10)))
    assert sorted(created for _, created in results) == [False] * 9 + [True]
    assert len({obj.id for obj, _ in results}) == 1
    assert await Account.objects.filter(owner="dee").count() == 1

    # In a session the insert is a savepoint: a lost race leaves its transaction usable.
    async with Session() as session:
        session.add(Account(owner="eve", balance=5))
        await session.flush()  # the session's transaction is open now
        loser = Account.objects.filter(balance__gte=0)
        real_get = chakra.QuerySet._get_steps
        calls = 0

        def missing_once(self: Any, lookups: dict[str, Any]) -> Any:
            nonlocal calls
            calls += 1
            if calls == 1:  # as if another transaction created "ann" just after this read
                return None
            return (yield from real_get(self, lookups))

        chakra.QuerySet._get_steps = missing_once  # type: ignore[method-assign]
        try:
            again, created = await loser.get_or_create(owner="ann")
        finally:
            chakra.QuerySet._get_steps = real_get  # type: ignore[method-assign]
        assert (again.id, created, calls) == (1, False, 2)
        assert await session.fetchval("SELECT count(*) FROM sess_accounts WHERE owner = 'eve'") == 1
        await session.commit()
    assert await Account.objects.filter(owner="eve").exists()

    # In a fresh session the new row belongs to the session's transaction, undone with it.
    with pytest.raises(RuntimeError):
        async with Session():
            _, created = await Account.objects.get_or_create(owner="fay")
            assert created
            raise RuntimeError("abandon the session")
    assert not await Account.objects.filter(owner="fay").exists()

    ben, created = Account.objects.get_or_create_sync(pk=2)
    assert (ben.owner, created) == ("ben", False)
    with pytest.raises(chakra.IntegrityError):
        # No row has id 99, and the insert fails on another constraint: raised as it is.
        Account.objects.get_or_create_sync(pk=99, defaults={"owner": "ann"})


async def test_update_or_create_updates_under_the_rows_lock_or_creates() -> None:
    await chakra.execute("CREATE UNIQUE INDEX sess_accounts_owner ON sess_accounts (owner)")
    ann, created = await Account.objects.update_or_create(owner="ann", defaults={"note": "vip"})
    assert (ann.id, ann.note, created) == (1, "vip", False)
    assert (await Account.objects.get(id=1)).note == "vip"  # saved, outside any session
    cid, created = await Account.objects.update_or_create(
        owner="cid", defaults={"note": "updated"}, create_defaults={"note": "new", "balance": 3}
    )
    assert (cid.note, cid.balance, created) == ("new", 3, True)
    # It takes the row's lock: it waits for a transaction holding it, then saves.
    async def elsewhere() -> tuple[Account, bool]:
        async with Session():  # not the holder's: a task inherits its creator's session
            return await Account.objects.update_or_create(owner="ben", defaults={"note": "after"})

    async with Session() as holder, holder.begin():
        # FOR KEY SHARE holds back FOR UPDATE, though not a plain UPDATE of the row.
        await holder.fetch("SELECT 1 FROM sess_accounts WHERE owner = 'ben' FOR KEY SHARE")
        waiting = asyncio.ensure_future(elsewhere())
        await asyncio.sleep(0.3)
        assert not waiting.done(), "update_or_create reads the row with FOR UPDATE"
    ben, created = await waiting
    assert (ben.note, created) == ("after", False)
    # Concurrent calls for a missing row: one creates it, the others update that row.
    results = await asyncio.gather(
        *(Account.objects.update_or_create(owner="eve", defaults={"note": f"t{i}"}) for i in range(8))
    )
    assert sorted(created for _, created in results) == [False] * 7 + [True]
    assert len({obj.id for obj, _ in results}) == 1
    assert (await Account.objects.get(owner="eve")).note.startswith("t")
    # In a session: part of its transaction, undone with it.
    with pytest.raises(RuntimeError):
        async with Session():
            ann, _ = await Account.objects.update_or_create(owner="ann", defaults={"balance": 0})
            assert await Account.objects.filter(owner="ann", balance=0).exists()  # saved in the transaction
            raise RuntimeError("abandon the session")
    assert (await Account.objects.get(id=1)).balance == 100
    dee, created = Account.objects.update_or_create_sync(owner="dee", defaults={"balance": lambda: 9})
    assert (dee.balance, created) == (9, True)


async def test_cancelled_task_mid_query_in_a_session() -> None:
    async def slow() -> None:
        async with Session() as session:
            await session.fetchval("SELECT pg_sleep(30)")

    task = asyncio.ensure_future(slow())
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await settled() == []


async def test_a_session_can_be_used_again_after_its_block() -> None:
    session = Session()
    async with session:
        first = await session.fetchval("SELECT pg_backend_pid()")
        acc = await session.get(Account, 1)
    assert acc is not None and acc.owner == "ann"  # still readable
    # Used again (as the spec's `async with session.begin()` does): a new connection.
    async with session.begin():
        acc.owner = "again"
    assert (await Account.objects.get(id=1)).owner == "again"
    session.close()
    assert first


async def test_session_on_another_database_object_and_url() -> None:
    db = chakra.Database(DATABASE_URL)
    async with db.session() as session:
        assert await session.fetchval("SELECT 1") == 1
        # Queries bound to the default database with `using` skip this session.
        assert await Account.objects.using(chakra.default_database()).count() == 2
    async with Session(DATABASE_URL) as session:
        assert session.database is Session(DATABASE_URL).database
        assert await Account.objects.count() == 2


async def test_pool_timeout_is_raised_when_no_connection_frees_up() -> None:
    db = chakra.Database(DATABASE_URL, max_connections=1, acquire_timeout=0.2)
    async with db.session() as session:
        await session.fetchval("SELECT 1")  # holds the only connection
        with pytest.raises(chakra.PoolTimeout):
            await db.fetchval("SELECT 1")
    assert await db.fetchval("SELECT 2") == 2
    db.close()


async def test_query_timeout_cancels_on_the_server() -> None:
    db = chakra.Database(DATABASE_URL, query_timeout=0.2)
    with pytest.raises(chakra.QueryTimeout):
        await db.fetchval("SELECT pg_sleep(5)")
    assert await db.fetchval("SELECT 1") == 1
    db.close()


class Profile(chakra.Model):
    __tablename__ = "sess_profiles"
    id = Field(Integer, primary_key=True)
    data = Field(chakra.JSON, default=dict)


async def test_json_changed_in_place_is_saved() -> None:
    recreate(Profile)
    await Profile.objects.create(data={"tags": ["a"]})
    async with Session() as session:
        profile = await session.get(Profile, 1)
        assert profile is not None
        profile.data["tags"].append("b")
        assert session.is_modified(profile)
    assert (await Profile.objects.get(id=1)).data == {"tags": ["a", "b"]}
    async with Session() as session:
        profile = await session.get(Profile, 1)
        profile.data["more"] = True  # type: ignore[union-attr]
        await session.flush()
        profile.data["more"] = False  # type: ignore[union-attr]
    assert (await Profile.objects.get(id=1)).data == {"tags": ["a", "b"], "more": False}


async def test_a_bad_object_in_a_flush_writes_nothing() -> None:
    with pytest.raises(chakra.DataError, match="Account.balance"):
        async with Session() as session:
            session.add(Account(owner="good"))
            ann = await session.get(Account, 1)
            ann.owner = "changed"  # type: ignore[union-attr]
            session.add(Account(owner="bad", balance="lots"))  # type: ignore[arg-type]
            await session.commit()
    assert sorted(await Account.objects.values_list("owner", flat=True)) == ["ann", "ben"]


async def test_a_savepoint_recovers_from_a_database_error() -> None:
    await chakra.execute("CREATE UNIQUE INDEX sess_accounts_owner ON sess_accounts (owner)")
    async with Session() as session:
        session.add(Account(owner="first"))
        await session.flush()
        with pytest.raises(chakra.IntegrityError) as info:
            async with session.begin():
                session.add(Account(owner="ann"))  # duplicate owner
                await session.flush()
        assert info.value.constraint == "sess_accounts_owner"
        # The transaction goes on: only the savepoint was rolled back.
        session.add(Account(owner="second"))
    owners = sorted(await Account.objects.values_list("owner", flat=True))
    assert owners == ["ann", "ben", "first", "second"]


async def test_a_database_error_outside_a_savepoint_rolls_everything_back() -> None:
    await chakra.execute("CREATE UNIQUE INDEX sess_accounts_owner ON sess_accounts (owner)")
    with pytest.raises(chakra.IntegrityError):
        async with Session() as session:
            session.add(Account(owner="first"))
            await session.flush()
            session.add(Account(owner="ann"))
            await session.commit()
    assert await Account.objects.count() == 2
    assert chakra.default_database().status()["in_use"] == 0
