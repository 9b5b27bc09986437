"""``only()`` and ``defer()``: instances with some fields left out of the statement, what
reading, setting and saving them does, and how a later query of the session fills them
in."""

from __future__ import annotations

import re

import pytest

import chakra
from chakra import Count, Field, Integer, Model, Session, String, Text
from conftest import recreate


class Writer(Model):
    __tablename__ = "df_writers"
    id = Field(Integer, primary_key=True)
    name = Field(String(20))


class Article(Model):
    __tablename__ = "df_articles"
    id = Field(Integer, primary_key=True)
    title = Field(String(40))
    body = Field(Text)
    summary = Field(Text, nullable=True)
    views = Field(Integer, default=0)
    writer_id = Field(Integer, nullable=True, references=Writer, related_name="articles")


@pytest.fixture(autouse=True)
def articles() -> None:
    recreate(Writer, Article)
    ann = Writer.objects.create_sync(name="Ann")
    Article.objects.bulk_create_sync(
        [
            Article(title="One", body="a long body", summary="short", views=3, writer_id=ann.id),
            Article(title="Two", body="another body", summary=None, views=5, writer_id=None),
        ]
    )


def stored(title: str) -> dict[str, object]:
    row = Article.objects.filter(title=title).values_sync("title", "body", "summary", "views")
    return row[0]


def not_loaded(field: str) -> str:
    return f"Article.{field} was not loaded (only() or defer() left it out)"


async def test_only_and_defer_leave_fields_out_of_the_statement() -> None:
    only = Article.objects.only("title").order_by("id")
    assert 'SELECT "id", "title" FROM "df_articles"' in only.sql()[0]
    one, two = await only
    assert (one.id, one.title, two.title) == (1, "One", "Two")
    with pytest.raises(AttributeError, match=re.escape(not_loaded("body"))):
        one.body  # noqa: B018
    assert one.to_dict() == {"id": 1, "title": "One"}
    deferred = Article.objects.defer("body").defer("summary").order_by("id")
    assert await deferred.values_list("id", flat=True) == [1, 2]  # values() name their own fields
    first = await deferred.first()
    assert first is not None and (first.title, first.views) == ("One", 3)
    assert not hasattr(first, "summary")
    everything = await deferred.defer(None).first()
    assert everything is not None and everything.body == "a long body"
    # With annotations and related rows, streamed too.
    counted = await Writer.objects.only("id").annotate(n=Count("articles")).get(name="Ann")
    assert counted.n == 1 and not hasattr(counted, "name")
    joined = await Article.objects.only("title").select_related("writer").order_by("id")
    assert joined[0].writer is not None and joined[0].writer.name == "Ann" and joined[1].writer is None
    assert [a.title async for a in Article.objects.only("title").order_by("-id").stream()] == ["Two", "One"]
    # Related rows are prefetched by keys the rows hold: one left out is named, not taken as None.
    with pytest.raises(AttributeError, match=re.escape(not_loaded("writer_id"))):
        await Article.objects.only("title").prefetch_related("writer")
    keyed = await Article.objects.only("writer_id").prefetch_related("writer").order_by("id")
    assert keyed[0].writer is not None and keyed[0].writer.name == "Ann"
    (ann,) = await Writer.objects.only("id").prefetch_related("articles")
    assert [a.title for a in ann.articles] == ["One"]


async def test_saving_writes_what_was_set_and_never_what_was_left_out() -> None:
    async with Session():
        one = await Article.objects.only("title", "views").get(title="One")
        one.views += 1
        one.summary = None  # set while not loaded: saved as set
    assert stored("One") == {"title": "One", "body": "a long body", "summary": None, "views": 4}
    async with Session() as session:
        two = await Article.objects.defer("body").get(title="Two")
        two.body = "rewritten"
        await session.flush()
        assert stored("Two")["body"] == "rewritten"
        two.title = "Deux"
    assert stored("Deux") == {"title": "Deux", "body": "rewritten", "summary": None, "views": 5}
    # A value the instance does not hold is never written.
    partial = await Article.objects.only("title").order_by("id")
    with pytest.raises(chakra.FieldError, match=re.escape(not_loaded("views"))):
        await Article.objects.bulk_update(partial, ["views"])
    assert stored("One")["views"] == 4


async def test_a_later_query_of_the_session_fills_in_what_was_left_out() -> None:
    async with Session() as session:
        one = await Article.objects.only("title").get(title="One")
        one.views = 10  # written by the autoflush before the next query
        again = await Article.objects.get(title="One")
        assert again is one and not session.is_modified(one)
        assert (one.title, one.body, one.summary, one.views) == ("One", "a long body", "short", 10)
        one.body = "edited"
        assert session.is_modified(one)
    assert stored("One") == {"title": "One", "body": "edited", "summary": "short", "views": 10}
    async with Session() as session:
        two = await Article.objects.only("title").get(title="Two")
        await session.refresh(two)
        assert two.body == "another body"


def test_only_and_defer_take_the_models_own_fields() -> None:
    with pytest.raises(chakra.FieldError, match=re.escape("only('nope'): not a field of Article (its fields: id,")):
        Article.objects.only("nope")
    with pytest.raises(chakra.FieldError, match=re.escape("only('writer__name'): not a field of Article")):
        Article.objects.only("writer__name")
    with pytest.raises(chakra.FieldError, match=re.escape("defer('id'): the primary key is always loaded")):
        Article.objects.defer("id")
    with pytest.raises(TypeError, match="only\\(\\) takes field names"):
        Article.objects.only(1)  # type: ignore[arg-type]


async def test_raw_sql_rows_become_instances() -> None:
    sql = "SELECT *, length(body) AS size FROM df_articles WHERE views > $1 ORDER BY id"
    rows = await Article.objects.raw(sql, 1)
    assert [(a.title, a.body, a.size) for a in rows] == [("One", "a long body", 11), ("Two", "another body", 12)]
    # Fields without a column are not loaded, as only() leaves them.
    (two,) = Article.objects.raw("SELECT id, title FROM df_articles WHERE title = $1", "Two").all_sync()
    assert two.title == "Two" and not hasattr(two, "body")
    async with Session():
        held = await Article.objects.get(title="One")
        (same,) = await Article.objects.raw("SELECT id, views FROM df_articles WHERE title = 'One'")
        assert same is held  # the session's instance of the row
        # A statement that writes runs in the session's transaction.
        (bumped,) = await Article.objects.raw("UPDATE df_articles SET views = views + 1 WHERE id = $1 RETURNING id", 2)
        assert bumped.id == 2 and not hasattr(bumped, "views")
    assert stored("Two")["views"] == 6
    authored = await Article.objects.raw("SELECT * FROM df_articles ORDER BY id").prefetch_related("writer")
    assert authored[0].writer is not None and authored[0].writer.name == "Ann" and authored[1].writer is None
    with pytest.raises(chakra.FieldError, match=re.escape("raw(): the rows have no `id` column, Article's primary key")):
        await Article.objects.raw("SELECT title FROM df_articles")
    with pytest.raises(chakra.ProgrammingError):
        await Article.objects.raw("SELECT nope FROM df_articles")
