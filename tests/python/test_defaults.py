"""Values the database or the clock gives a row: ``db_default=`` (the column's
``DEFAULT``, read back after the insert) and ``auto_now`` / ``auto_now_add``."""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import re
import uuid

import pytest

import chakra
from chakra import (
    DB_DEFAULT,
    JSON,
    UUID,
    BigInteger,
    Boolean,
    Bytes,
    Date,
    DateTime,
    Field,
    FieldError,
    Float,
    Integer,
    Model,
    Numeric,
    Session,
    SmallInteger,
    String,
    Text,
    Time,
    Value,
)
from chakra.functions import Lower, Now
from conftest import recreate


class Post(Model):
    __tablename__ = "dd_posts"
    id = Field(Integer, primary_key=True)
    title = Field(String(40))
    status = Field(String(10), db_default="draft")
    score = Field(Integer, db_default=Value(0))
    created = Field(DateTime(timezone=True), db_default=Now())
    meta = Field(JSON, db_default={"tags": ["new"]})
    note = Field(Text, nullable=True, db_default="it's; -- \\ \"quoted\"")


class Entry(Model):
    __tablename__ = "dd_entries"
    id = Field(Integer, primary_key=True)
    title = Field(String(40))
    added = Field(DateTime(timezone=True), auto_now_add=True)
    changed = Field(DateTime(timezone=True), auto_now=True)
    day = Field(Date, auto_now=True)
    local = Field(DateTime, auto_now_add=True)


CONSTANTS = {
    "big": -(2**63),
    "small": 32767,
    "flag": False,
    "ratio": float("inf"),
    "price": decimal.Decimal("12.50"),
    "day": dt.date(2024, 2, 29),
    "at": dt.time(23, 59, 58, 123456),
    "local": dt.datetime(2024, 1, 2, 3, 4, 5),
    "aware": dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30))),
    "key": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "blob": b"\x00'\\\xff",
}


class Kinds(Model):
    __tablename__ = "dd_kinds"
    id = Field(Integer, primary_key=True)
    big = Field(BigInteger, db_default=CONSTANTS["big"])
    small = Field(SmallInteger, db_default=CONSTANTS["small"])
    flag = Field(Boolean, db_default=CONSTANTS["flag"])
    ratio = Field(Float, db_default=CONSTANTS["ratio"])
    price = Field(Numeric(6, 2), db_default=CONSTANTS["price"])
    day = Field(Date, db_default=CONSTANTS["day"])
    at = Field(Time, db_default=CONSTANTS["at"])
    local = Field(DateTime, db_default=CONSTANTS["local"])
    aware = Field(DateTime(timezone=True), db_default=CONSTANTS["aware"])
    key = Field(UUID, db_default=CONSTANTS["key"])
    blob = Field(Bytes, db_default=CONSTANTS["blob"])


@pytest.fixture(autouse=True)
def tables() -> None:
    recreate(Post, Entry, Kinds)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def test_the_ddl_gives_each_column_its_default() -> None:
    create = Post._meta.require_schema().create_sql()[0]
    assert "\"status\" varchar(10) DEFAULT 'draft'::varchar(10) NOT NULL" in create
    assert '"score" integer DEFAULT \'0\'::integer NOT NULL' in create
    assert '"created" timestamp with time zone DEFAULT now() NOT NULL' in create
    assert "\"meta\" jsonb DEFAULT '{\"tags\": [\"new\"]}'::jsonb NOT NULL" in create
    # A row inserted by other means gets the same values.
    chakra.execute_sync("INSERT INTO dd_posts (title) VALUES ('raw')")
    row = chakra.fetch_sync("SELECT status, score, meta, note, created <= now() AS past FROM dd_posts")[0]
    assert row == {"status": "draft", "score": 0, "meta": {"tags": ["new"]}, "note": 'it\'s; -- \\ "quoted"', "past": True}


async def test_a_constant_of_every_type_is_stored_as_given() -> None:
    made = await Kinds.objects.create()
    stored = (await Kinds.objects.values())[0]
    assert {name: getattr(made, name) for name in CONSTANTS} == CONSTANTS
    assert {name: stored[name] for name in CONSTANTS} == CONSTANTS


async def test_an_insert_leaves_db_default_fields_to_the_database_and_reads_them_back() -> None:
    fresh = Post(title="fresh")
    assert fresh.status is DB_DEFAULT and fresh.created is DB_DEFAULT and repr(fresh.score) == "DB_DEFAULT"
    before = utcnow()
    post = await Post.objects.create(title="one")
    assert (post.status, post.score, post.meta, post.note) == ("draft", 0, {"tags": ["new"]}, 'it\'s; -- \\ "quoted"')
    assert before - dt.timedelta(seconds=5) <= post.created <= utcnow() + dt.timedelta(seconds=5)
    given = await Post.objects.create(title="two", status="live", score=7, note=None, meta=[1])
    assert (given.status, given.score, given.note, given.meta) == ("live", 7, None, [1])
    stored = await Post.objects.order_by("id").values_list("title", "status", "score", "note")
    assert stored == [("one", "draft", 0, 'it\'s; -- \\ "quoted"'), ("two", "live", 7, None)]


async def test_bulk_create_mixes_rows_with_and_without_values() -> None:
    rows = [
        Post(title="a"),
        Post(title="b", status="live"),
        Post(title="c"),
        Post(id=100, title="d", score=3),
        Post(title="e", status=DB_DEFAULT, score=5),
    ]
    made = await Post.objects.bulk_create(rows)
    assert made == rows
    assert [(p.title, p.status, p.score) for p in rows] == [
        ("a", "draft", 0),
        ("b", "live", 0),
        ("c", "draft", 0),
        ("d", "draft", 3),
        ("e", "draft", 5),
    ]
    assert all(isinstance(p.id, int) for p in rows) and rows[3].id == 100
    stored = await Post.objects.order_by("title").values_list("title", "id", "status", "score")
    assert stored == [(p.title, p.id, p.status, p.score) for p in rows]


async def test_a_session_inserts_with_defaults_then_saves_changes() -> None:
    async with Session() as session:
        post = Post(title="s")
        session.add(post)
        await session.flush()
        assert post.status == "draft" and isinstance(post.created, dt.datetime)
        post.status = "live"
        await session.commit()
    assert await Post.objects.values_list("status", flat=True) == ["live"]


async def test_db_default_is_only_for_inserts() -> None:
    post = await Post.objects.create(title="x", status="live")
    async with Session() as session:
        held = await Post.objects.get(id=post.id)
        held.status = DB_DEFAULT
        held.title = "changed"
        with pytest.raises(FieldError, match=re.escape("Post.status holds DB_DEFAULT, which only an insert gives")):
            await session.commit()
        held.status = "live"
        held.title = "x"
        assert await Post.objects.values_list("title", "status") == [("x", "live")], "nothing was written"
    held.status = DB_DEFAULT
    with pytest.raises(FieldError, match=re.escape("Post.status holds DB_DEFAULT")):
        await Post.objects.bulk_update([held], ["status"])
    assert await Post.objects.values_list("title", "status") == [("x", "live")]


@pytest.mark.parametrize(
    ("field", "error", "message"),
    [
        (Field(Integer, db_default="1"), TypeError, "Bad.f: db_default= takes an int, got str '1'"),
        (Field(Integer, db_default=True), TypeError, "Bad.f: db_default= takes an int, got bool True"),
        (Field(Integer, db_default=2**31), ValueError, "Bad.f: db_default= 2147483648 does not fit in integer"),
        (Field(String(3), db_default="long"), ValueError, "Bad.f: db_default= 'long' is longer than 3 characters"),
        (Field(Text, db_default="a\x00b"), ValueError, "Bad.f: db_default= PostgreSQL text cannot hold NUL"),
        (Field(Float, db_default="1.5"), TypeError, "Bad.f: db_default= takes a float, got str"),
        (Field(Numeric(5, 2), db_default=1.5), TypeError, "Bad.f: db_default= takes a Decimal or an int, got float"),
        (Field(Text, db_default=None), ValueError, "Bad.f: db_default= None needs nullable=True"),
        (Field(Text, db_default=Lower("x")), TypeError, "Bad.f: db_default= takes a constant, Now() or RandomUUID()"),
        (
            Field(DateTime(timezone=True), db_default=dt.datetime(2024, 1, 1)),
            ValueError,
            "Bad.f: db_default= DateTime(timezone=True) takes an aware datetime",
        ),
        (Field(Date, db_default=dt.datetime(2024, 1, 1)), TypeError, "Bad.f: db_default= takes a date, got datetime"),
        (Field(JSON, db_default=float("nan")), ValueError, "Bad.f: db_default= Out of range float values"),
    ],
)
def test_a_db_default_the_column_cannot_take_is_refused_naming_the_field(
    field: Field[object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=re.escape(message)):

        class Bad(Model):
            __tablename__ = "dd_bad"
            id = Field(Integer, primary_key=True)
            f = field


def test_auto_now_options_are_checked() -> None:
    with pytest.raises(TypeError, match="auto_now= and auto_now_add= need a DateTime or Date field, not Integer()"):
        Field(Integer, auto_now=True)
    with pytest.raises(ValueError, match="auto_now= and auto_now_add= are exclusive"):
        Field(DateTime, auto_now=True, auto_now_add=True)
    with pytest.raises(ValueError, match="give no default="):
        Field(DateTime, auto_now_add=True, default=dt.datetime.now)


async def test_auto_now_add_and_auto_now_on_insert() -> None:
    before = utcnow()
    entry = await Entry.objects.create(title="a", added=dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc))
    after = utcnow()
    assert before <= entry.added <= after, "auto_now_add overrides a value given, as Django's"
    assert entry.changed == entry.added and entry.day == dt.date.today()
    assert entry.local.tzinfo is None and abs(entry.local - dt.datetime.now()) < dt.timedelta(seconds=5)
    [stored] = await Entry.objects.values_list("added", "changed")
    assert stored == (entry.added, entry.changed)
    many = await Entry.objects.bulk_create([Entry(title="b"), Entry(title="c")])
    assert all(before <= e.added <= utcnow() and e.changed == e.added for e in many)


async def test_auto_now_on_every_write() -> None:
    entry = await Entry.objects.create(title="a")
    added, changed = entry.added, entry.changed

    async with Session() as session:
        held = await Entry.objects.get(id=entry.id)
        await session.commit()
        assert held.changed == changed, "no change, no write, no new time"
        held.title = "b"
        await session.commit()
        assert held.changed > changed and held.added == added
    assert await Entry.objects.values_list("changed", flat=True) == [held.changed]

    changed = held.changed
    assert await Entry.objects.filter(id=entry.id).update(title="c") == 1
    [(title, now)] = await Entry.objects.values_list("title", "changed")
    assert title == "c" and now > changed
    pinned = dt.datetime(2001, 1, 1, tzinfo=dt.timezone.utc)
    await Entry.objects.update(changed=pinned)
    assert await Entry.objects.values_list("changed", flat=True) == [pinned], "a value given wins"

    held.title = "d"
    assert await Entry.objects.bulk_update([held], ["title"]) == 1
    [(title, now, first)] = await Entry.objects.values_list("title", "changed", "added")
    assert title == "d" and now == held.changed and now > pinned and first == added


class Status(enum.StrEnum):
    DRAFT = "draft"
    LIVE = "live"


class Story(Model):
    __tablename__ = "dd_stories"
    id = Field(Integer, primary_key=True)
    status = Field(String(10), choices=Status, default=Status.DRAFT)
    size = Field(Integer, choices=[(1, "small"), (2, "large")], nullable=True)


def test_choices_limit_the_column_too() -> None:
    recreate(Story)
    create = Story._meta.require_schema().create_sql()[0]
    assert """"status" varchar(10) NOT NULL CHECK ("status" IN ('draft'::varchar(10), 'live'::varchar(10)))""" in create
    with pytest.raises(chakra.IntegrityError):
        chakra.execute_sync("INSERT INTO dd_stories (status) VALUES ('gone')")


async def test_choices_are_checked_on_every_write_before_anything_is_sent() -> None:
    recreate(Story)
    story = await Story.objects.create(status=Status.LIVE, size=2)
    assert (await Story.objects.get(id=story.id)).status == Status.LIVE == "live"
    assert story.get_status_display() == "LIVE" and story.get_size_display() == "large"
    assert Story(size=None).get_size_display() is None
    refused = re.escape("Story.status takes one of its choices ('draft', 'live'), got 'gone'")
    with pytest.raises(chakra.DataError, match=refused):
        await Story.objects.create(status="gone")
    with pytest.raises(chakra.DataError, match=refused):
        await Story.objects.bulk_create([Story(), Story(status="gone")])
    with pytest.raises(chakra.DataError, match=refused):
        await Story.objects.update(status="gone")
    story.status = "gone"
    with pytest.raises(chakra.DataError, match=refused):
        await Story.objects.bulk_update([story], ["status"])
    with pytest.raises(chakra.DataError, match=re.escape("Story.size takes one of its choices (1, 2), got 3")):
        async with Session() as session:
            session.add(Story(size=3))
    assert await Story.objects.values_list("status", "size") == [("live", 2)]


def test_choices_are_checked_when_declared() -> None:
    with pytest.raises(TypeError, match="choices= takes an Enum class, values or"):
        Field(String(5), choices="ab")
    with pytest.raises(ValueError, match="choices= needs at least one value"):
        Field(String(5), choices=[])
    with pytest.raises(TypeError, match=re.escape("Bad.f: choices= takes a str, got int 1")):

        class Bad(Model):
            __tablename__ = "dd_bad_choices"
            id = Field(Integer, primary_key=True)
            f = Field(String(5), choices=[1, 2])


class Shelf(Model):
    __tablename__ = "dd_shelves"
    __indexes__ = [("room", "-placed"), "label"]
    __checks__ = {"dd_shelves_width_positive": "width > 0"}
    id = Field(Integer, primary_key=True)
    room = Field(String(10))
    label = Field(String(10))
    width = Field(Integer)
    placed = Field(DateTime(timezone=True), auto_now_add=True)


def test_indexes_and_checks_are_made_once() -> None:
    recreate(Shelf)
    chakra.create_all_sync([Shelf])  # again: nothing changes
    indexes = chakra.fetch_sync("SELECT indexdef FROM pg_indexes WHERE tablename = 'dd_shelves' ORDER BY indexname")
    defs = [row["indexdef"] for row in indexes]
    assert any(d.endswith("(label)") for d in defs) and any(d.endswith("(room, placed DESC)") for d in defs)
    Shelf.objects.create_sync(room="a", label="x", width=3)
    with pytest.raises(chakra.IntegrityError, match="dd_shelves_width_positive"):
        Shelf.objects.create_sync(room="a", label="y", width=0)
    with pytest.raises(TypeError, match="__indexes__ takes groups of its field names"):

        class BadIndex(Model):
            __tablename__ = "dd_bad_index"
            __indexes__ = [("nope",)]
            id = Field(Integer, primary_key=True)

    with pytest.raises(TypeError, match="__checks__ maps constraint names to SQL conditions"):

        class BadCheck(Model):
            __tablename__ = "dd_bad_check"
            __checks__ = {"not a name": "id > 0"}
            id = Field(Integer, primary_key=True)
