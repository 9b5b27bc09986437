"""Django's instance methods: ``await obj.save()``, ``await obj.delete()`` and
``await obj.refresh_from_db()`` (and their ``_sync`` twins), outside a session (each
statement commits on its own) and inside one (in its transaction)."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

import chakra
from chakra import DateTime, Field, Integer, Model, ProgrammingError, Session, String
from chakra.signals import post_save
from conftest import recreate


class Task(Model):
    __tablename__ = "sv_tasks"
    id = Field(Integer, primary_key=True)
    title = Field(String(40))
    done = Field(Integer, default=0)
    status = Field(String(10), db_default="open")
    touched = Field(DateTime(timezone=True), auto_now=True)


@pytest.fixture(autouse=True)
def tasks() -> None:
    recreate(Task)


def statements(record: list[str]) -> Any:
    """A post_save receiver recording (created, update_fields)."""

    def receiver(sender: type, instance: Task, created: bool, update_fields: Any, **kwargs: Any) -> None:
        record.append(f"{instance.title}:{'created' if created else sorted(update_fields)}")

    return receiver


async def test_save_inserts_then_updates_only_what_changed() -> None:
    seen: list[str] = []
    receiver = statements(seen)
    post_save.connect(receiver, sender=Task)
    try:
        task = Task(title="write")
        await task.save()
        assert task.id is not None and task.status == "open", "key and database default read back"
        first = task.touched
        await task.save()  # nothing changed: nothing written
        task.done = 1
        await task.save()
        assert task.touched > first
        assert await Task.objects.values_list("title", "done", "status") == [("write", 1, "open")]
        same = await Task.objects.get(id=task.id)
        same.title = "rewrite"
        same.save_sync()
    finally:
        post_save.disconnect(receiver, sender=Task)
    assert seen == ["write:created", "write:['done', 'touched']", "rewrite:['title', 'touched']"]


async def test_delete_and_refresh() -> None:
    task = Task(title="t")
    await task.save()
    other = await Task.objects.get(id=task.id)
    other.title = "changed elsewhere"
    await other.save()
    task.done = 5
    await task.refresh_from_db()
    assert (task.title, task.done) == ("changed elsewhere", 0), "unsaved changes dropped"
    await task.delete()
    assert await Task.objects.count() == 0
    with pytest.raises(Task.DoesNotExist):
        await other.refresh_from_db()
    await task.save()  # forgotten as saved: inserted again
    assert await Task.objects.count() == 1
    with pytest.raises(ProgrammingError, match=re.escape("has never been saved: there is no row to delete")):
        Task(title="new").delete_sync()


async def test_in_a_session_they_join_its_transaction() -> None:
    with pytest.raises(RuntimeError):
        async with Session() as session:
            task = Task(title="in session")
            await task.save()
            assert task in session and task.id is not None
            assert await Task.objects.count() == 1, "written at once, in the transaction"
            raise RuntimeError("roll it back")
    assert await Task.objects.count() == 0
    async with Session() as session:
        task = Task(title="kept")
        await task.save()
        await task.delete()
        assert task not in session
        await Task(title="second").save()
    assert await Task.objects.values_list("title", flat=True) == ["second"]


def test_their_names_are_not_field_names() -> None:
    with pytest.raises(TypeError, match="field names cannot start with '_' or be one of"):

        class Bad(Model):
            __tablename__ = "sv_bad"
            id = Field(Integer, primary_key=True)
            save = Field(Integer)

    assert callable(chakra.Model.save)


async def test_atomic_commits_together_or_not_at_all() -> None:
    async with chakra.atomic() as session:
        await Task(title="a").save()
        await Task.objects.create(title="b")
        assert chakra.current_session() is session
    assert await Task.objects.count() == 2

    with pytest.raises(RuntimeError):
        async with chakra.atomic():
            await Task(title="c").save()
            raise RuntimeError("undo")
    assert await Task.objects.count() == 2

    # Nested: a savepoint, undone alone.
    async with chakra.atomic():
        await Task(title="d").save()
        with pytest.raises(RuntimeError):
            async with chakra.atomic():
                await Task(title="e").save()
                raise RuntimeError("undo e")
    assert sorted(await Task.objects.values_list("title", flat=True)) == ["a", "b", "d"]

    @chakra.atomic()
    async def fails() -> None:
        await Task(title="f").save()
        raise ValueError("undo f")

    @chakra.atomic()
    def works() -> int:
        Task(title="g").save_sync()
        return Task.objects.count_sync()

    with pytest.raises(ValueError):
        await fails()
    assert await asyncio.to_thread(works) == 4
    assert sorted(await Task.objects.values_list("title", flat=True)) == ["a", "b", "d", "g"]


async def test_instances_of_another_database_are_written_there() -> None:
    from conftest import DATABASE_URL

    chakra.execute_sync("DROP SCHEMA IF EXISTS sv_other CASCADE")
    chakra.execute_sync("CREATE SCHEMA sv_other")
    other = chakra.Database(DATABASE_URL + ("&" if "?" in DATABASE_URL else "?") + "options=-csearch_path%3Dsv_other")
    try:
        other.create_all_sync([Task])
        made = await Task.objects.using(other).create(title="there")
        made.title = "changed there"
        await made.save()
        loaded = await Task.objects.using(other).get(id=made.id)
        assert loaded.title == "changed there"
        assert await Task.objects.count() == 0, "nothing in the default database"
        loaded.done = 3
        await loaded.save()
        await made.refresh_from_db()
        assert made.done == 3
        await loaded.delete()
        assert await Task.objects.using(other).count() == 0
    finally:
        other.close()
        chakra.execute_sync("DROP SCHEMA sv_other CASCADE")


class TaskQuerySet(chakra.QuerySet["Chore"]):
    def done(self) -> chakra.QuerySet[Chore]:
        return self.filter(done__gt=0)

    def titled(self, prefix: str) -> chakra.QuerySet[Chore]:
        return self.filter(title__startswith=prefix)


class OpenManager(chakra.Manager["Chore"]):
    def still_open(self) -> chakra.QuerySet[Chore]:
        return self.filter(done=0)


class Chore(Model):
    __tablename__ = "sv_chores"
    objects = TaskQuerySet.as_manager()
    id = Field(Integer, primary_key=True)
    title = Field(String(40))
    done = Field(Integer, default=0)


class Errand(Model):
    __tablename__ = "sv_errands"
    objects = OpenManager()
    id = Field(Integer, primary_key=True)
    title = Field(String(40))
    done = Field(Integer, default=0)


async def test_custom_querysets_and_managers_chain() -> None:
    recreate(Chore, Errand)
    await Chore.objects.bulk_create([Chore(title="wash", done=1), Chore(title="walk"), Chore(title="wax", done=2)])
    assert await Chore.objects.done().titled("wa").order_by("id").values_list("title", flat=True) == ["wash", "wax"]
    assert await Chore.objects.titled("wa").filter(id__gt=1).done().count() == 1
    assert isinstance(Chore.objects.order_by("id").using(chakra.default_database()), TaskQuerySet)
    await Errand.objects.bulk_create([Errand(title="post"), Errand(title="bank", done=1)])
    assert await Errand.objects.still_open().values_list("title", flat=True) == ["post"]
    with pytest.raises(TypeError, match="objects takes a Manager subclass or instance"):

        class Bad(Model):
            __tablename__ = "sv_bad_manager"
            objects = 5
            id = Field(Integer, primary_key=True)


async def test_djangos_async_names_work_as_written() -> None:
    # As Django's async API spells them.
    task = await Task.objects.acreate(title="a")
    assert await Task.objects.acount() == 1 and await Task.objects.aexists()
    assert (await Task.objects.aget(id=task.id)).title == "a"
    got, created = await Task.objects.aget_or_create(title="b")
    assert created and (await Task.objects.order_by("id").alast()) == got
    await Task.objects.filter(title="b").aupdate(done=2)
    got.title = "bb"
    await got.asave()
    await got.arefresh_from_db()
    assert (got.title, got.done) == ("bb", 2)
    assert await Task.objects.values_list("title", flat=True).order_by("title").afirst() == "a"
    await got.adelete()
    assert await Task.objects.filter(title="a").adelete() == 1
    assert await Task.objects.acount() == 0
