"""Model signals (``chakra.signals``), as Django's: ``pre_save``/``post_save`` around each
insert and update of an instance, ``pre_delete``/``post_delete`` around each delete, with
sync and async receivers, for one model or all."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

import chakra
from chakra import Field, Integer, Model, ProgrammingError, Session, String
from chakra.signals import Signal, post_delete, post_save, pre_delete, pre_save, receiver
from conftest import recreate


class Doc(Model):
    __tablename__ = "sg_docs"
    id = Field(Integer, primary_key=True)
    title = Field(String(40))
    slug = Field(String(40), default="")
    views = Field(Integer, default=0)


class Log(Model):
    __tablename__ = "sg_logs"
    id = Field(Integer, primary_key=True)
    line = Field(String(80))


SEEN: list[tuple[str, Any, ...]] = []


def record(signal: Signal, sender: type, instance: Any, **kwargs: Any) -> None:
    extra = tuple(kwargs[k] for k in ("created", "update_fields") if k in kwargs)
    SEEN.append((signal.name, sender.__name__, instance.title, *extra))


def slugify(sender: type, instance: Doc, **kwargs: Any) -> None:
    instance.slug = instance.title.lower().replace(" ", "-")


@pytest.fixture(autouse=True)
def tables() -> Iterator[None]:
    recreate(Doc, Log)
    SEEN.clear()
    for signal in (pre_save, post_save, pre_delete, post_delete):
        signal.connect(record, sender=Doc)
    pre_save.connect(slugify, sender=Doc)
    yield
    for signal in (pre_save, post_save, pre_delete, post_delete):
        signal.disconnect(record, sender=Doc)
    pre_save.disconnect(slugify, sender=Doc)


async def test_saves_and_deletes_of_a_session_send_them() -> None:
    async with Session() as session:
        doc = Doc(title="Hello World")
        session.add(doc)
        await session.commit()
        assert doc.slug == "hello-world", "what pre_save set was saved with the row"
        doc.views = 3
        await session.commit()
        await session.commit()  # nothing changed: nothing sent
        await session.delete(doc)
        await session.commit()
    assert SEEN == [
        ("pre_save", "Doc", "Hello World", True),
        ("post_save", "Doc", "Hello World", True, None),
        ("pre_save", "Doc", "Hello World", False),
        ("post_save", "Doc", "Hello World", False, frozenset({"views"})),
        ("pre_delete", "Doc", "Hello World"),
        ("post_delete", "Doc", "Hello World"),
    ]
    assert await Doc.objects.count() == 0


async def test_create_and_get_or_create_send_them_and_bulk_operations_do_not() -> None:
    made = await Doc.objects.create(title="A B")
    assert made.slug == "a-b" and await Doc.objects.values_list("slug", flat=True) == ["a-b"]
    await Doc.objects.get_or_create(title="A B")
    await Doc.objects.get_or_create(title="C")
    await Doc.objects.bulk_create([Doc(title="bulk")])
    await Doc.objects.filter(title="bulk").update(views=1)
    assert [entry[:3] for entry in SEEN] == [
        ("pre_save", "Doc", "A B"),
        ("post_save", "Doc", "A B"),
        ("pre_save", "Doc", "C"),
        ("post_save", "Doc", "C"),
    ]


async def test_a_delete_by_query_reads_the_rows_for_the_receivers() -> None:
    await Doc.objects.bulk_create([Doc(title="x1"), Doc(title="x2"), Doc(title="y")])
    assert await Doc.objects.filter(title__startswith="x").delete() == 2
    assert sorted(SEEN) == [
        ("post_delete", "Doc", "x1"),
        ("post_delete", "Doc", "x2"),
        ("pre_delete", "Doc", "x1"),
        ("pre_delete", "Doc", "x2"),
    ]
    assert await Doc.objects.values_list("title", flat=True) == ["y"]
    assert await Doc.objects.filter(title="none").delete() == 0


async def test_async_receivers_are_awaited_and_may_use_the_database() -> None:
    @receiver(post_save, sender=Doc)
    async def log_it(sender: type, instance: Doc, created: bool, **kwargs: Any) -> None:
        await asyncio.sleep(0)
        await Log.objects.create(line=f"{'created' if created else 'changed'} {instance.title}")

    try:
        async with Session() as session:
            session.add(Doc(title="async"))
            await session.commit()
        assert await Log.objects.values_list("line", flat=True) == ["created async"]
        # The blocking API runs it to completion where no event loop runs.
        await asyncio.to_thread(Doc.objects.create_sync, title="threaded")
        assert await Log.objects.order_by("id").values_list("line", flat=True) == ["created async", "created threaded"]
        # ...and refuses where one does, instead of blocking it.
        with pytest.raises(ProgrammingError, match="an async post_save receiver cannot run inside a _sync call"):
            Doc.objects.create_sync(title="blocked")
    finally:
        post_save.disconnect(log_it, sender=Doc)


async def test_a_pre_save_error_stops_the_write_and_leaves_the_session_as_it_was() -> None:
    def refuse(sender: type, instance: Doc, **kwargs: Any) -> None:
        if instance.title == "bad":
            raise ValueError("no bad titles")

    pre_save.connect(refuse, sender=Doc)
    try:
        async with Session() as session:
            doc = Doc(title="bad")
            session.add(doc)
            with pytest.raises(ValueError, match="no bad titles"):
                await session.flush()
            assert doc in session and doc.id is None, "still pending"
            doc.title = "good"
            await session.commit()
        assert await Doc.objects.values_list("title", flat=True) == ["good"]
        with pytest.raises(ValueError, match="no bad titles"):
            await Doc.objects.create(title="bad")
        assert await Doc.objects.count() == 1
    finally:
        pre_save.disconnect(refuse, sender=Doc)


def test_receivers_connect_once_per_sender_and_can_be_for_every_model() -> None:
    calls: list[str] = []

    def anything(sender: type, **kwargs: Any) -> None:
        calls.append(sender.__name__)

    post_save.connect(anything)
    post_save.connect(anything)
    try:
        Log.objects.create_sync(line="x")
        Doc.objects.create_sync(title="y")
    finally:
        assert post_save.disconnect(anything)
    assert not post_save.disconnect(anything)
    assert calls == ["Log", "Doc"]
    with pytest.raises(TypeError, match="takes a function"):
        post_save.connect("not callable")  # type: ignore[arg-type]
    assert chakra.signals.pre_save.has_listeners(Doc) and not chakra.signals.pre_save.has_listeners(Log)


async def test_on_commit_runs_after_the_commit_and_never_after_a_rollback() -> None:
    ran: list[str] = []

    async def published() -> None:
        await asyncio.sleep(0)
        # The row is committed: another connection sees it.
        seen = await asyncio.to_thread(lambda: chakra.fetchval_sync("SELECT count(*) FROM sg_docs WHERE title = 'c'"))
        ran.append(f"published {seen}")

    async with Session() as session:
        session.add(Doc(title="c"))
        session.on_commit(lambda: ran.append("sync"))
        session.on_commit(published)
        await session.flush()
        assert ran == [], "not before the commit"
    assert ran == ["sync", "published 1"]

    ran.clear()
    with pytest.raises(RuntimeError):
        async with Session() as session:
            session.add(Doc(title="d"))
            session.on_commit(lambda: ran.append("never"))
            raise RuntimeError("rolled back")
    assert ran == [] and await Doc.objects.filter(title="d").count() == 0

    # A savepoint's rollback drops what was given inside it; a released one's wait.
    async with Session() as session:
        session.add(Doc(title="e"))
        await session.flush()
        with pytest.raises(RuntimeError):
            async with session.begin():
                session.on_commit(lambda: ran.append("inner, rolled back"))
                raise RuntimeError
        async with session.begin():
            session.on_commit(lambda: ran.append("inner, released"))
        assert ran == []
        session.on_commit(lambda: ran.append("outer"))
    assert ran == ["inner, released", "outer"]


def test_on_commit_errors_and_outside_a_session() -> None:
    ran: list[str] = []

    def boom() -> None:
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        with Session() as session:
            session.add(Doc(title="f"))
            session.on_commit(boom)
            session.on_commit(lambda: ran.append("after boom"))
    assert ran == [] and Doc.objects.filter(title="f").count_sync() == 1, "committed; the later callback skipped"
    with Session() as session:
        session.on_commit(boom, robust=True)
        session.on_commit(lambda: ran.append("after robust"))
    assert ran == ["after robust"]
    chakra.on_commit(lambda: ran.append("at once"))
    assert ran[-1] == "at once"

    async def later() -> None:
        pass

    with pytest.raises(ProgrammingError, match="on_commit\\(\\) outside a session calls its callback at once"):
        chakra.on_commit(later)
    with pytest.raises(TypeError, match="takes a function of no arguments"):
        with Session() as session:
            session.on_commit("x")  # type: ignore[arg-type]
