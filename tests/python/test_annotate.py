"""``QuerySet.annotate``: values computed per row — aggregates of a relation's rows as
correlated subqueries, arithmetic on the row's fields — read as attributes, filtered and
ordered by name, and the errors for what cannot work."""

from __future__ import annotations

import decimal
import re
from typing import Any

import pytest

import chakra
from chakra import (
    Avg,
    Case,
    Count,
    F,
    Field,
    Integer,
    Max,
    Min,
    Model,
    Numeric,
    OuterRef,
    Q,
    Session,
    String,
    StringAgg,
    Subquery,
    Sum,
    Value,
    When,
)
from chakra.functions import Coalesce, Concat, Greatest, JSONObject, Lower, Upper
from conftest import recreate, sent


class Writer(Model):
    __tablename__ = "an_writers"
    id = Field(Integer, primary_key=True)
    name = Field(String(20))
    rank = Field(Integer)


class Novel(Model):
    __tablename__ = "an_novels"
    id = Field(Integer, primary_key=True)
    title = Field(String(20))
    pages = Field(Integer)
    price = Field(Numeric(8, 2), nullable=True)
    writer_id = Field(Integer, nullable=True, references=Writer, related_name="novels")


class Chapter(Model):
    __tablename__ = "an_chapters"
    id = Field(Integer, primary_key=True)
    novel_id = Field(Integer, references=Novel, related_name="chapters")
    words = Field(Integer)


class Node(Model):
    __tablename__ = "an_nodes"
    id = Field(Integer, primary_key=True)
    name = Field(String(20))
    parent_id = Field(Integer, nullable=True, references="self", related_name="children")


class Ranked(Model):
    """A field whose column has another name."""

    __tablename__ = "an_ranked"
    id = Field(Integer, primary_key=True)
    rank = Field(Integer, column="position")


@pytest.fixture(autouse=True)
def shelf() -> None:
    recreate(Writer, Novel, Chapter)
    ann, ben, _ = Writer.objects.bulk_create_sync(
        [Writer(name="Ann", rank=1), Writer(name="Ben", rank=2), Writer(name="Cid", rank=3)]
    )
    a1, _, b1, _ = Novel.objects.bulk_create_sync(
        [
            Novel(title="a1", pages=100, price=decimal.Decimal("10.50"), writer_id=ann.id),
            Novel(title="a2", pages=300, price=None, writer_id=ann.id),
            Novel(title="b1", pages=200, price=decimal.Decimal("7.25"), writer_id=ben.id),
            Novel(title="x1", pages=50, price=None, writer_id=None),
        ]
    )
    Chapter.objects.bulk_create_sync(
        [Chapter(novel_id=a1.id, words=1000), Chapter(novel_id=a1.id, words=3000), Chapter(novel_id=b1.id, words=500)]
    )


def raises(error: type[BaseException], message: str) -> Any:
    return pytest.raises(error, match=f"^{re.escape(message)}$")


async def test_aggregates_of_a_relation_are_attributes_of_each_row() -> None:
    writers = await Writer.objects.annotate(
        Count("novels"),
        pages=Sum("novels__pages"),
        longest=Max("novels__pages"),
        mean=Avg("novels__pages"),
        priced=Count("novels__price"),
        thick=Count("novels", filter=Q(novels__pages__gte=200)),
    ).order_by("name")
    got = [(w.name, w.novels__count, w.pages, w.longest, w.mean, w.priced, w.thick) for w in writers]
    assert got == [
        ("Ann", 2, 400, 300, 200.0, 1, 1),
        ("Ben", 1, 200, 200, 200.0, 1, 1),
        ("Cid", 0, None, None, None, 0, 0),
    ]
    assert type(writers[0].mean) is float and type(writers[0].pages) is int


async def test_annotations_filter_order_slice_count_and_run_in_one_statement() -> None:
    qs = Writer.objects.annotate(n=Count("novels")).filter(n__gte=1).order_by("-n", "name")
    assert [(w.name, w.n) for w in await qs] == [("Ann", 2), ("Ben", 1)]
    assert await qs.count() == 2
    assert await qs.exists()
    assert [(w.name, w.n) for w in await qs[1:]] == [("Ben", 1)]
    assert (await qs.first()) is not None and (await qs.get(name="Ben")).n == 1
    none = Writer.objects.annotate(n=Count("novels")).exclude(n__gt=0)
    assert [(w.name, w.n) for w in none.all_sync()] == [("Cid", 0)]
    either = Writer.objects.annotate(n=Count("novels")).filter(Q(n=0) | Q(name="Ben")).order_by("name")
    assert [w.name for w in await either] == ["Ben", "Cid"]
    few = Writer.objects.annotate(n=Count("novels")).filter(n__in=[0, 1]).order_by("n")
    assert [w.name for w in await few] == ["Cid", "Ben"]
    streamed = [(w.name, w.n) async for w in Writer.objects.annotate(n=Count("novels")).order_by("name").stream()]
    assert streamed == [("Ann", 2), ("Ben", 1), ("Cid", 0)]
    # As a subquery, only the key is selected, the annotation filter still applying.
    busy = Writer.objects.annotate(n=Count("novels")).filter(n__gte=2)
    assert sorted(n.title for n in await Novel.objects.filter(writer_id__in=busy)) == ["a1", "a2"]


async def test_forward_relations_nested_filters_and_arithmetic() -> None:
    novels = await Novel.objects.annotate(
        writer_rank=Max("writer__rank"),
        chapters_n=Count("chapters"),
        double=F("pages") * 2,
        per_page=F("price") / F("pages"),
    ).order_by("title")
    got = [(n.title, n.writer_rank, n.chapters_n, n.double) for n in novels]
    assert got == [("a1", 1, 2, 200), ("a2", 1, 0, 600), ("b1", 2, 1, 400), ("x1", None, 0, 100)]
    assert novels[0].per_page == decimal.Decimal("0.105") and novels[1].per_page is None
    # F across a forward relation reads the row it leads to, as values() does.
    named = Novel.objects.annotate(writer_name=F("writer__name")).filter(writer_name="Ann").order_by("-title")
    assert [(n.title, n.writer_name) for n in await named] == [("a2", "Ann"), ("a1", "Ann")]
    with pytest.raises(chakra.FieldError, match="unknown field `nope`"):
        Novel.objects.annotate(x=F("writer__nope"))
    with pytest.raises(chakra.FieldError, match="`title__year`: `title` is a `varchar` column, which has no year"):
        Novel.objects.annotate(x=F("title__year"))
    # A filter may span further relations of the related model.
    with_chapters = Writer.objects.annotate(n=Count("novels", filter=Q(novels__chapters__id__isnull=False)))
    assert {w.name: w.n for w in await with_chapters} == {"Ann": 1, "Ben": 1, "Cid": 0}


async def test_expressions_name_fields_across_forward_relations() -> None:
    """``F("writer__name")`` goes wherever ``F`` goes, as in Django: inside functions and
    arithmetic, in filters, orderings, updates and aggregates (NULL where a key is NULL)."""
    novels = await Novel.objects.annotate(
        who=Lower("writer__name"), weight=F("pages") * F("writer__rank"), shown=Coalesce("writer__name", Value("?"))
    ).order_by("title")
    assert [(n.title, n.who, n.weight, n.shown) for n in novels] == [
        ("a1", "ann", 100, "Ann"),
        ("a2", "ann", 300, "Ann"),
        ("b1", "ben", 400, "Ben"),
        ("x1", None, None, "?"),
    ]
    chapters = Chapter.objects.annotate(w=Upper("novel__writer__name"), per=F("words") / F("novel__writer__rank"))
    assert [(c.w, c.per) for c in await chapters.order_by("id")] == [("ANN", 1000), ("ANN", 3000), ("BEN", 250)]
    assert await Novel.objects.filter(pages__gt=F("writer__rank") * 150).values_list("title", flat=True) == ["a2"]
    ordered = Novel.objects.order_by(Lower("writer__name").desc(nulls_last=True), "title")
    assert await ordered.values_list("title", flat=True) == ["b1", "a1", "a2", "x1"]
    assert await Novel.objects.aggregate(total=Sum(F("pages") * F("writer__rank"))) == {"total": 800}
    per_writer = Novel.objects.values(who=Coalesce("writer__name", Value("Nobody"))).annotate(n=Count("id"))
    assert await per_writer.order_by("who") == [
        {"who": "Ann", "n": 2},
        {"who": "Ben", "n": 1},
        {"who": "Nobody", "n": 1},
    ]
    assert await Novel.objects.update(title=Concat(Lower("writer__name"), Value("-"), "title")) == 4
    titles = await Novel.objects.order_by("id").values_list("title", flat=True)
    assert titles == ["ann-a1", "ann-a2", "ben-b1", "-x1"]


async def test_fields_across_relations_to_the_same_table_name_the_right_rows() -> None:
    recreate(Node)
    root = await Node.objects.create(name="r")
    same = await Node.objects.create(name="r", parent_id=root.id)
    await Node.objects.create(name="c", parent_id=same.id)
    assert await Node.objects.filter(name=F("parent__name")).values_list("id", flat=True) == [same.id]
    rows = await Node.objects.annotate(up=Upper("parent__parent__name")).order_by("id").values_list("name", "up")
    assert rows == [("r", None), ("r", None), ("c", "R")]


def test_fields_across_relations_in_expressions_are_checked() -> None:
    message = (
        "F('writer__novels__title'): Writer.novels holds many rows, which give a row no single value to read; "
        "annotate one (Min, Max, Count) and use it"
    )
    with raises(chakra.FieldError, message):
        Novel.objects.annotate(x=Lower("writer__novels__title"))
    with pytest.raises(chakra.FieldError, match="unknown field `nope`"):
        Novel.objects.filter(title=Upper("writer__nope"))
    with raises(chakra.FieldError, "F arithmetic needs a numeric field; Writer.name is not one"):
        Novel.objects.annotate(x=F("writer__name") + 1)
    with raises(chakra.FieldError, 'F("writer__name") cannot stand for Novel.pages: their types differ'):
        Novel.objects.update_sync(pages=F("writer__name"))
    with raises(chakra.FieldError, "Lower() takes text; it was given F(\"writer__rank\")"):
        Novel.objects.annotate(x=Lower("writer__rank"))


async def test_a_filter_across_the_relation_picks_the_rows_reached_too() -> None:
    """As Django reuses the filter's join: ``filter(novels__pages__gt=…)`` then
    ``values("novels__title")`` gives the matching novels, not every novel of the writers
    that have one, and aggregates over the novels count those; a filter on another path
    does not narrow them."""
    long = Writer.objects.filter(novels__pages__gt=150).order_by("name", "novels__title")
    assert await long.values_list("name", "novels__title") == [("Ann", "a2"), ("Ben", "b1")]
    assert await long.values_list("novels__pages", flat=True) == [300, 200]
    by_name = Writer.objects.filter(name="Ann").order_by("novels__title").values_list("novels__title", flat=True)
    assert await by_name == ["a1", "a2"]
    both = Writer.objects.filter(novels__pages__gt=150, novels__title__startswith="a").values_list("novels__title")
    assert await both == [("a2",)]
    # Aggregates over those rows count only the ones the filter kept, as Django's.
    grouped = long.values("name").annotate(n=Count("novels")).order_by("name")
    assert await grouped == [{"name": "Ann", "n": 1}, {"name": "Ben", "n": 1}]
    kept = Writer.objects.filter(novels__pages__gt=150)
    assert [w.n for w in await kept.annotate(n=Count("novels")).order_by("name")] == [1, 1]
    assert await kept.aggregate(pages=Sum("novels__pages")) == {"pages": 500}
    assert [w.n for w in await Writer.objects.annotate(n=Count("novels")).order_by("name")] == [2, 1, 0]
    # A filter after values() keeps the joined rows it matches, too.
    after = Writer.objects.order_by("name", "novels__title").values_list("name", "novels__title")
    assert await after.filter(novels__pages__gt=150) == [("Ann", "a2"), ("Ben", "b1")]
    assert await after.filter(name="Ann") == [("Ann", "a1"), ("Ann", "a2")]


async def test_q_objects_on_one_relation_pick_the_rows_reached_too() -> None:
    """Django joins the relation once for every condition of one ``filter()`` call on it,
    ``Q`` objects too: ``Q(novels__pages__gt=250) | Q(novels__title="b1")`` keeps the
    novels meeting either. A ``Q`` mixing the relation's fields with the writer's own, a
    negated one and ``exclude()`` (subqueries in Django too) pick writers only."""
    either = Writer.objects.filter(Q(novels__pages__gt=250) | Q(novels__title="b1"))
    ordered = either.order_by("name", "novels__title")
    assert await ordered.values_list("name", "novels__title") == [("Ann", "a2"), ("Ben", "b1")]
    assert [w.n for w in await either.annotate(n=Count("novels")).order_by("name")] == [1, 1]
    assert await either.aggregate(pages=Sum("novels__pages")) == {"pages": 500}
    # Negated, as in Django: the writers with no such novel, each with all their novels.
    negated = Writer.objects.filter(~Q(novels__pages__gt=250)).order_by("name", "novels__title")
    assert await negated.values_list("name", "novels__title") == [("Ben", "b1"), ("Cid", None)]
    both = Writer.objects.filter(Q(novels__pages__gt=150), novels__title__startswith="a").values_list("novels__title")
    assert await both == [("a2",)]
    # Deeper: the chapters of the novels, kept by a Q on the chapters.
    words = Writer.objects.filter(Q(novels__chapters__words__gte=1000) & Q(novels__chapters__words__lt=2000))
    assert await words.values_list("name", "novels__chapters__words") == [("Ann", 1000)]
    # The writer's own fields in the same Q: the writers are picked, every novel counted.
    mixed = Writer.objects.filter(Q(novels__pages__gt=250) | Q(name="Ben")).annotate(n=Count("novels"))
    assert [(w.name, w.n) for w in await mixed.order_by("name")] == [("Ann", 2), ("Ben", 1)]
    excluded = Writer.objects.exclude(novels__pages__gt=250).annotate(n=Count("novels"))
    assert [(w.name, w.n) for w in await excluded.order_by("name")] == [("Ben", 1), ("Cid", 0)]


async def test_values_across_relations_holding_many_rows_give_a_row_per_row_reached() -> None:
    """``values("novels__title")`` joins as Django's does: a row per novel, one with None
    for a writer with none; order, slices, distinct, counts and groups apply to those rows."""
    rows = await Writer.objects.order_by("name", "novels__title").values("name", "novels__title")
    assert rows == [
        {"name": "Ann", "novels__title": "a1"},
        {"name": "Ann", "novels__title": "a2"},
        {"name": "Ben", "novels__title": "b1"},
        {"name": "Cid", "novels__title": None},
    ]
    ann = Writer.objects.filter(name="Ann")
    assert await ann.values_list("novels__pages", flat=True).order_by("-novels__pages") == [300, 100]
    chained = Writer.objects.values_list("name", "novels__chapters__words").order_by("name", "novels__chapters__words")
    assert await chained == [("Ann", 1000), ("Ann", 3000), ("Ann", None), ("Ben", 500), ("Cid", None)]
    ids = await Writer.objects.values_list("novels", flat=True).order_by("novels")
    novels = await Novel.objects.exclude(writer_id=None).order_by("id").values_list("id", flat=True)
    assert ids == [*novels, None]
    window = Writer.objects.order_by("name", "novels__title").values_list("novels__title", flat=True)[1:3]
    assert await window == ["a2", "b1"]
    assert await Writer.objects.values("name", "novels__title").count() == 4
    assert await Writer.objects.filter(name="Cid").values("novels__title").exists()
    keys = Writer.objects.values_list("novels__writer_id", flat=True).distinct().order_by("novels__writer_id")
    writers = await Writer.objects.order_by("name").values_list("id", flat=True)
    assert await keys == [*writers[:2], None]
    # Grouped by a field of the rows reached, with an aggregate further along the chain.
    per_title = Writer.objects.values("novels__title").annotate(n=Count("novels__chapters")).order_by("novels__title")
    assert await per_title == [
        {"novels__title": "a1", "n": 2},
        {"novels__title": "a2", "n": 0},
        {"novels__title": "b1", "n": 1},
        {"novels__title": None, "n": 0},
    ]
    assert [row["novels__title"] for row in await per_title.reverse()] == [None, "b1", "a2", "a1"]
    assert await per_title.last() == {"novels__title": None, "n": 0}
    # As a subquery: a value per row reached.
    ann_novels = Writer.objects.filter(name="Ann").values_list("novels__id", flat=True)
    assert await Novel.objects.filter(id__in=ann_novels).order_by("title").values_list("title", flat=True) == [
        "a1",
        "a2",
    ]
    longest = Writer.objects.filter(id=OuterRef("writer_id")).order_by("-novels__pages").values("novels__pages")[:1]
    assert await Novel.objects.annotate(top=Subquery(longest)).order_by("id").values_list("top", flat=True) == [
        300,
        300,
        200,
        None,
    ]
    # Instances are the rows themselves: an order that would repeat them is refused.
    with pytest.raises(chakra.FieldError, match="ordered by `novels__title`, across a relation holding many rows"):
        await Writer.objects.order_by("novels__title")
    with raises(
        chakra.FieldError,
        "values('novels__nope'): 'nope' is not a field of Novel, which novels leads to "
        "(its fields: id, title, pages, price, writer_id)",
    ):
        Writer.objects.values("novels__nope")


async def test_aggregates_across_a_chain_of_relations() -> None:
    writers = await Writer.objects.annotate(
        Count("novels__chapters"),
        words=Sum("novels__chapters__words"),
        long=Count("novels__chapters", filter=Q(novels__chapters__words__gte=2000)),
        # A field of a row on the way, through the last rows' own relation.
        in_thick=Count("novels__chapters", filter=Q(novels__chapters__novel__pages__gte=200)),
    ).order_by("name")
    got = [(w.name, w.novels__chapters__count, w.words, w.long, w.in_thick) for w in writers]
    assert got == [("Ann", 2, 4000, 1, 0), ("Ben", 1, 500, 0, 1), ("Cid", 0, None, 0, 0)]
    # Filtered and ordered by it, in one statement.
    qs = Writer.objects.annotate(words=Sum("novels__chapters__words")).filter(words__gt=100).order_by("words")
    assert [(w.name, w.words) for w in await qs] == [("Ben", 500), ("Ann", 4000)]
    # Each row at the end counts once per chain reaching it, as in Django's join: an
    # author is reached once through each of their novels.
    per_novel = await Writer.objects.annotate(n=Count("novels__writer")).order_by("name")
    assert [(w.name, w.n) for w in per_novel] == [("Ann", 2), ("Ben", 1), ("Cid", 0)]
    # Forward and back again: how many novels each chapter's writer has.
    chapters = await Chapter.objects.annotate(n=Count("novel__writer__novels")).order_by("words")
    assert [(c.words, c.n) for c in chapters] == [(500, 1), (1000, 2), (3000, 2)]
    # A tree of one table: each node's grandchildren.
    recreate(Node)
    root = await Node.objects.create(name="root")
    kids = [await Node.objects.create(name=f"k{i}", parent_id=root.id) for i in range(2)]
    for i in range(3):
        await Node.objects.create(name=f"g{i}", parent_id=kids[0].id)
    tree = await Node.objects.annotate(n=Count("children__children")).order_by("name")
    assert {n.name: n.n for n in tree}["root"] == 3 and {n.name: n.n for n in tree}["k0"] == 0


async def test_a_sessions_instances_get_the_annotations() -> None:
    async with Session():
        ann = await Writer.objects.get(name="Ann")
        again = await Writer.objects.annotate(n=Count("novels")).get(name="Ann")
        assert again is ann and ann.n == 2
    with pytest.raises(AttributeError, match="'Writer' object has no attribute 'nope'"):
        ann.nope  # noqa: B018


async def test_groups_and_totals_aggregate_across_relations_as_djangos_joins() -> None:
    # Each novel of each writer, each chapter of each novel: the rows joined, as Django.
    totals = await Writer.objects.aggregate(
        n=Count("novels", distinct=True), pages=Sum("novels__pages"), words=Sum("novels__chapters__words")
    )
    assert totals == {"n": 3, "pages": 700, "words": 4500}, "a1's pages count once per chapter"
    assert await Writer.objects.aggregate(n=Count("novels")) == {"n": 3}
    long = Count("novels", filter=Q(novels__pages__gte=200))
    assert await Writer.objects.aggregate(long=long, ann=Count("novels", filter=Q(rank=1))) == {"long": 2, "ann": 2}
    assert await Writer.objects.aggregate(n=Count("novels", filter=Q(novels__pk__gt=0))) == {"n": 3}
    # A row per group, each with its related rows' aggregates.
    per_writer = Novel.objects.values("writer_id").annotate(
        chapters=Count("chapters"),
        words=Sum("chapters__words"),
        big=Count("chapters", filter=Q(chapters__words__gt=900)),
    )
    got = [(r["chapters"], r["words"], r["big"]) for r in await per_writer.order_by("writer_id")]
    assert got == [(2, 4000, 2), (1, 500, 0), (0, None, 0)], "Ann, Ben, then no writer"
    assert await per_writer.filter(chapters__gt=1).count() == 1
    # Over the rows the query picks: a window, annotated and filtered, grouped and locked.
    assert await Writer.objects.order_by("rank")[:1].aggregate(p=Sum("novels__pages")) == {"p": 400}
    busy = Writer.objects.annotate(m=Count("novels")).filter(m__gt=0)
    assert await busy.aggregate(p=Sum("novels__pages")) == {"p": 600}
    by_count = Writer.objects.annotate(m=Count("novels")).values("m").annotate(p=Sum("novels__pages")).order_by("m")
    assert await by_count == [{"m": 0, "p": None}, {"m": 1, "p": 200}, {"m": 2, "p": 400}]
    async with Session():
        locked = Writer.objects.select_for_update().values("rank").annotate(n=Count("novels")).order_by("rank")
        assert [r["n"] for r in await locked] == [2, 1, 0]
    # Forward: each chapter's novel, once per chapter.
    assert await Chapter.objects.aggregate(pages=Sum("novel__pages"), most=Max("novel__writer__rank")) == {
        "pages": 400,
        "most": 2,
    }
    per_rank = Chapter.objects.values("novel__writer__rank").annotate(total=Sum("words")).order_by("-total")
    assert await per_rank == [{"novel__writer__rank": 1, "total": 4000}, {"novel__writer__rank": 2, "total": 500}]
    with pytest.raises(chakra.FieldError, match="unknown field `nope`"):
        await Writer.objects.aggregate(n=Count("novels__nope"))
    deeper = "`n`: the filter of an aggregate across novels names fields of the rows it reaches"
    with pytest.raises(chakra.FieldError, match=deeper):
        await Writer.objects.aggregate(n=Count("novels", filter=Q(novels__chapters__words__gt=900)))
    with raises(chakra.FieldError, "`n`: 'words' is not a field of Chapter to aggregate ('novels__chapters__words__x')"):
        await Writer.objects.aggregate(n=Count("novels__chapters__words__x"))
    with pytest.raises(chakra.FieldError, match="`p`: sum needs a numeric field"):
        await Writer.objects.values("rank").annotate(p=Sum("novels__title"))


def test_annotations_that_cannot_work_are_refused_before_any_sql() -> None:
    clash = "the annotation `name` is named as a field or another annotation of Writer: name it otherwise"
    with raises(chakra.FieldError, clash):
        Writer.objects.annotate(name=Count("novels"))
    with raises(chakra.FieldError, "the annotation `position` is the column of Ranked.rank: name it otherwise"):
        Ranked.objects.annotate(position=F("rank") * 10)
    for taken in ("novels", "pk", "objects", "to_dict"):
        with pytest.raises(chakra.FieldError, match=f"the annotation `{taken}` is named as a relation or attribute"):
            Writer.objects.annotate(**{taken: Count("novels")})
    not_related = (
        '`n`: annotate() aggregates the rows relations lead to, as Count("relation"), Sum("relation__field") or '
        "Count(\"relation__relation\"); got {!r} (relations of Writer: novels)"
    )
    for path in ("rank", "novels__chapters__words__x", "novels__nope__id"):
        with raises(chakra.FieldError, not_related.format(path)):
            Writer.objects.annotate(n=Count(path))
    unprefixed = "`n`: the filter of an aggregate of novels names its rows' fields as novels__field; got 'pages__gt'"
    with raises(chakra.FieldError, unprefixed):
        Writer.objects.annotate(n=Count("novels", filter=Q(pages__gt=1)))
    on_the_way = (
        "`n`: the filter of an aggregate of novels__chapters names its rows' fields as novels__chapters__field; "
        "got 'novels__pages__gte'"
    )
    with raises(chakra.FieldError, on_the_way):
        Writer.objects.annotate(n=Count("novels__chapters", filter=Q(novels__pages__gte=1)))
    with pytest.raises(chakra.FieldError, match="`total`: sum needs a numeric field"):
        Writer.objects.annotate(total=Sum("novels__title"))
    with pytest.raises(chakra.FieldError, match="F arithmetic needs a numeric field; Writer.name is not one"):
        Writer.objects.annotate(x=F("name") * 2)
    annotated = Writer.objects.annotate(n=Count("novels"))
    with pytest.raises(chakra.FieldError, match="lookup `n__startswith` is not one an annotation takes"):
        annotated.filter(n__startswith="1")
    with pytest.raises(chakra.FieldError, match="unknown field `nope`"):
        annotated.values("name", "nope").all_sync()
    with pytest.raises(chakra.ProgrammingError, match="cannot group an annotated queryset"):
        annotated.values("rank").annotate(m=Count("*")).all_sync()


async def test_writes_by_query_pick_rows_by_their_annotations_too() -> None:
    idle = Writer.objects.annotate(n=Count("novels")).filter(n=0)
    assert await idle.update(rank=9) == 1
    assert [(w.name, w.rank) for w in await Writer.objects.filter(rank=9)] == [("Cid", 9)]
    busy = Writer.objects.annotate(n=Count("novels"), pages=Sum("novels__pages"))
    assert await busy.filter(Q(n__in=[2, 3]) | Q(pages__isnull=True)).update(rank=8) == 2
    assert sorted(w.name for w in await Writer.objects.filter(rank=8)) == ["Ann", "Cid"]
    assert await busy.exclude(n__gte=1).filter(name="Cid").delete() == 1
    assert sorted(w.name for w in await Writer.objects.all()) == ["Ann", "Ben"]
    # Annotations alone change no write: the WHERE is the fields'.
    assert await Writer.objects.annotate(n=Count("novels")).filter(name="Ben").update(rank=7) == 1


async def test_values_name_annotations_as_fields() -> None:
    annotated = Writer.objects.annotate(n=Count("novels"), pages=Sum("novels__pages")).order_by("name")
    assert await annotated.values("name", "n") == [
        {"name": "Ann", "n": 2},
        {"name": "Ben", "n": 1},
        {"name": "Cid", "n": 0},
    ]
    assert await annotated.values_list("n", "name") == [(2, "Ann"), (1, "Ben"), (0, "Cid")]
    assert await annotated.filter(n__gt=0).values_list("pages", flat=True) == [400, 200]
    rows = await annotated.filter(n=1).values()
    assert [(r["name"], r["n"], r["pages"]) for r in rows] == [("Ben", 1, 200)]
    by_count = await Writer.objects.annotate(n=Count("novels")).order_by("n").values_list("name", flat=True)
    assert by_count == ["Cid", "Ben", "Ann"]
    assert await annotated.values_list("n", flat=True).distinct().order_by("-n") == [2, 1, 0]


async def test_alias_filters_and_orders_by_a_value_the_rows_do_not_hold() -> None:
    """Django's ``alias()``: a value to filter and order by, named as annotate() names it,
    but neither read into the instances nor sent back with the rows."""
    shelf = Writer.objects.alias(n=Count("novels"), pages=Sum("novels__pages"))
    with sent() as statements:
        prolific = await shelf.filter(n__gte=1).order_by("-pages")
    assert [w.name for w in prolific] == ["Ann", "Ben"]
    assert not hasattr(prolific[0], "n") and not hasattr(prolific[0], "pages")
    (text,) = statements.texts
    outer_select = text[: text.index(" FROM ")]
    assert '"n"' not in outer_select and '"pages"' not in outer_select, text
    ordered = await Writer.objects.alias(n=Count("novels")).order_by("n", "name")
    assert [w.name for w in ordered] == ["Cid", "Ben", "Ann"]
    assert not hasattr(ordered[0], "n")
    assert await shelf.filter(pages__gt=250).count() == 1
    assert await shelf.filter(n=0).exists()
    assert Writer.objects.alias(n=Count("novels")).filter(n__gte=1).count_sync() == 2


async def test_an_alias_nothing_uses_is_not_computed() -> None:
    with sent() as statements:
        writers = await Writer.objects.alias(n=Count("novels")).order_by("name")
    assert [w.name for w in writers] == ["Ann", "Ben", "Cid"]
    (text,) = statements.texts
    assert "count" not in text.lower(), text


async def test_an_alias_and_annotations_side_by_side() -> None:
    shelf = Writer.objects.alias(n=Count("novels"))
    both = await shelf.annotate(m=Count("novels__chapters")).filter(n__gte=1).order_by("name")
    assert [(w.name, w.m) for w in both] == [("Ann", 2), ("Ben", 1)]
    assert not hasattr(both[0], "n")
    # Joined rows (select_related) and values of the rows relations reach leave it out too.
    first = await Novel.objects.alias(chapters_n=Count("chapters")).select_related("writer").order_by("-chapters_n").first()
    assert first is not None and first.title == "a1" and first.writer.name == "Ann"
    assert not hasattr(first, "chapters_n")
    reached = await shelf.filter(n__gte=1).order_by("n", "novels__title").values_list("name", "novels__title")
    assert reached == [("Ben", "b1"), ("Ann", "a1"), ("Ann", "a2")]


async def test_values_leave_an_alias_out_and_refuse_to_read_it() -> None:
    shelf = Writer.objects.alias(n=Count("novels")).filter(n__gte=1).order_by("name")
    rows = await shelf.values()
    assert rows == [{"id": rows[0]["id"], "name": "Ann", "rank": 1}, {"id": rows[1]["id"], "name": "Ben", "rank": 2}]
    assert await shelf.values_list("name", flat=True) == ["Ann", "Ben"]
    message = "cannot read the alias `n`: alias() values are for filtering and ordering; annotate() it to read it"
    with raises(chakra.FieldError, message):
        await shelf.values("name", "n")
    with raises(chakra.FieldError, message):
        await shelf.values_list("n", flat=True)


async def test_alias_refuses_what_annotate_refuses() -> None:
    with raises(
        chakra.FieldError, "the annotation `novels` is named as a relation or attribute of Writer: name it otherwise"
    ):
        Writer.objects.alias(novels=Count("novels"))
    with pytest.raises(chakra.FieldError, match="name"):
        Writer.objects.alias(name=Count("novels"))
    with pytest.raises(TypeError, match="alias"):
        Writer.objects.alias(n=42)  # type: ignore[arg-type]
    with pytest.raises(chakra.ProgrammingError, match="cannot alias combined querysets"):
        Writer.objects.filter(rank=1).union(Writer.objects.filter(rank=2)).alias(n=Count("novels"))


async def test_expressions_build_on_annotations_and_aliases() -> None:
    """``F("n")`` naming an annotation (or alias) stands for its value, as in Django:
    in later annotations, functions, ``Case`` branches and the order."""
    shelf = Writer.objects.annotate(n=Count("novels"))
    rows = await shelf.annotate(twice=F("n") * 2, top=Greatest("n", "rank")).order_by("name").values_list(
        "name", "twice", "top"
    )
    assert rows == [("Ann", 4, 2), ("Ben", 2, 2), ("Cid", 0, 3)]
    picked = await shelf.annotate(c=Case(When(rank=1, then=F("n")), default=Value(-1))).order_by("name")
    assert [(w.name, w.c) for w in picked] == [("Ann", 2), ("Ben", -1), ("Cid", -1)]
    per_rank = Writer.objects.alias(pages=Sum("novels__pages")).annotate(per=F("pages") / F("rank"))
    assert await per_rank.order_by("name").values_list("per", flat=True) == [400, 100, None]
    by_negated = await shelf.order_by((F("n") * -1).asc(), "name").values_list("name", flat=True)
    assert by_negated == ["Ann", "Ben", "Cid"]
    # Of a text aggregate, a text function; of a count, none.
    titles = Writer.objects.annotate(t=StringAgg("novels__title", ",", ordering="novels__title"))
    assert await titles.annotate(u=Upper("t")).order_by("name").values_list("u", flat=True) == ["A1,A2", "B1", None]
    with raises(chakra.FieldError, "Upper() takes text; it was given the annotation `n`"):
        shelf.annotate(u=Upper("n"))


async def test_filters_compare_fields_and_annotations_with_each_other() -> None:
    shelf = Writer.objects.annotate(n=Count("novels"))
    names = lambda qs: qs.order_by("name").values_list("name", flat=True)  # noqa: E731
    assert await names(shelf.filter(rank__lte=F("n"))) == ["Ann"]
    assert await names(shelf.filter(n__gte=F("rank"))) == ["Ann"]
    assert await names(shelf.filter(Q(n__gt=F("rank")) | Q(name="Cid"))) == ["Ann", "Cid"]
    assert await names(shelf.exclude(rank__lte=F("n"))) == ["Ben", "Cid"]
    assert await names(Writer.objects.alias(n=Count("novels")).filter(n__lt=F("rank") - 1)) == ["Cid"]
    assert await shelf.filter(n__gte=F("rank")).count() == 1
    with raises(chakra.FieldError, "unknown field `missing` on `an_writers` (fields: id, name, rank)"):
        shelf.filter(n__gte=F("missing"))


async def test_aggregates_over_annotations() -> None:
    """Django's ``annotate(n=Count("books")).aggregate(Avg("n"))``: the average number of
    novels per writer, each writer counted once, the filter on the annotation kept."""
    shelf = Writer.objects.annotate(n=Count("novels"))
    totals = await shelf.aggregate(total=Sum("n"), avg=Avg("n"), top=Max(F("n") + F("rank")))
    assert totals == {"total": 3, "avg": 1.0, "top": 3}
    assert await shelf.filter(n__gte=1).aggregate(total=Sum("n"), avg=Avg("n")) == {"total": 3, "avg": 1.5}
    cheapest = Writer.objects.alias(low=Min("novels__price"))
    assert await cheapest.aggregate(top=Max("low")) == {"top": decimal.Decimal("10.50")}
    assert shelf.aggregate_sync(n__sum=Sum("n")) == {"n__sum": 3}
    with raises(chakra.FieldError, "`bad`: sum needs a numeric field; the annotation `t` is not one"):
        await Writer.objects.annotate(t=StringAgg("novels__title", ",")).aggregate(bad=Sum("t"))
    with pytest.raises(chakra.ProgrammingError, match="cannot group an annotated queryset"):
        await shelf.values("rank").annotate(total=Sum("n"))


async def test_update_sets_fields_from_annotations() -> None:
    changed = await Writer.objects.annotate(n=Count("novels")).filter(n__gte=1).update(rank=F("n") * 10)
    assert changed == 2
    assert await Writer.objects.order_by("name").values_list("name", "rank") == [("Ann", 20), ("Ben", 10), ("Cid", 3)]
    # Rows picked by comparing an annotation with a field, updated and deleted by query.
    assert await Writer.objects.annotate(n=Count("novels")).filter(n__gt=F("rank") - 10).update(rank=0) == 2
    assert await Writer.objects.order_by("name").values_list("rank", flat=True) == [20, 0, 0]
    assert await Writer.objects.alias(n=Count("novels")).filter(n__lt=F("rank") + 1, n=0).delete() == 1
    assert await Writer.objects.order_by("name").values_list("name", flat=True) == ["Ann", "Ben"]


async def test_distinct_on_fields_keeps_the_first_row_of_each_combination() -> None:
    """Django's ``distinct(*fields)`` (PostgreSQL's ``DISTINCT ON``): each writer's longest
    novel, in an order that begins with the fields; a relation's name is its key (in the
    order too, its model having no ``__ordering__``)."""
    longest = Novel.objects.exclude(writer_id=None).order_by("writer", "-pages").distinct("writer")
    assert [n.title for n in await longest] == ["a2", "b1"]
    assert await longest.count() == 2
    assert await longest.values_list("title", flat=True) == ["a2", "b1"]
    assert await longest.first() is not None
    by_value = Novel.objects.order_by("writer_id", "pages").values("writer_id", "title").distinct("writer_id")
    assert [row["title"] for row in await by_value] == ["a1", "b1", "x1"]
    # Over an annotation: the first writer (by name) of each number of novels.
    counted = Writer.objects.annotate(n=Count("novels")).order_by("n", "name").distinct("n")
    assert [(w.name, w.n) for w in await counted] == [("Cid", 0), ("Ben", 1), ("Ann", 2)]
    message = (
        "distinct(fields) keeps the first row of each combination of the fields' values, in an order that begins "
        "with them; this one begins with `pages`: order_by() those fields first"
    )
    with raises(chakra.FieldError, message):
        await Novel.objects.order_by("-pages").distinct("writer")
    with raises(chakra.FieldError, message):
        await Novel.objects.order_by("pages", "writer_id").values("title").distinct("writer")
    with pytest.raises(chakra.FieldError, match="unknown field `nope`"):
        Novel.objects.distinct("nope")


async def test_aggregates_go_inside_expressions_and_functions() -> None:
    """As in Django's ``annotate()``: ``Coalesce(Sum("novels__pages"), 0)``,
    ``Count("novels") * 2 + F("rank")``, ``order_by(Count("novels").desc())``; each the
    value of each writer's novels."""
    writers = Writer.objects.order_by("name")
    assert await writers.annotate(p=Coalesce(Sum("novels__pages"), 0)).values_list("p", flat=True) == [400, 200, 0]
    assert await writers.annotate(s=Count("novels") * 2 + F("rank")).values_list("s", flat=True) == [5, 4, 3]
    assert await writers.annotate(s=F("rank") + Count("novels")).values_list("s", flat=True) == [3, 3, 3]
    assert await writers.annotate(s=10 - Count("novels")).values_list("s", flat=True) == [8, 9, 10]
    by_count = Writer.objects.order_by(Count("novels").asc(), "name").values_list("name", flat=True)
    assert await by_count == ["Cid", "Ben", "Ann"]
    assert await Writer.objects.aggregate(x=Sum(F("rank") * Count("novels"))) == {"x": 4}
    with raises(
        chakra.FieldError,
        "`Max((F('novels__pages') * 2))`: annotate() aggregates the rows relations lead to; an aggregate of "
        "(F('novels__pages') * 2) goes in aggregate() or values(...).annotate()",
    ):
        writers.annotate(s=Coalesce(Max(F("novels__pages") * 2), 0))


async def test_json_object_of_fields_expressions_and_aggregates() -> None:
    """Django's ``JSONObject``: a dict per row, a string naming a field (across a foreign
    key too)."""
    cards = Writer.objects.order_by("name").annotate(
        card=JSONObject(name="name", shout=Upper("name"), novels=Count("novels"), twice=F("rank") * 2, none=Value(None))
    )
    assert await cards.values_list("card", flat=True) == [
        {"name": "Ann", "shout": "ANN", "novels": 2, "twice": 2, "none": None},
        {"name": "Ben", "shout": "BEN", "novels": 1, "twice": 4, "none": None},
        {"name": "Cid", "shout": "CID", "novels": 0, "twice": 6, "none": None},
    ]
    assert (await cards.first()).card["novels"] == 2  # type: ignore[union-attr]
    by_writer = Novel.objects.exclude(writer_id=None).annotate(w=JSONObject(writer="writer__name", pages="pages"))
    assert await by_writer.order_by("title").values_list("w", flat=True) == [
        {"writer": "Ann", "pages": 100},
        {"writer": "Ann", "pages": 300},
        {"writer": "Ben", "pages": 200},
    ]
    assert await Writer.objects.annotate(card=JSONObject()).values_list("card", flat=True)[:1] == [{}]


async def test_values_aggregate_over_their_rows() -> None:
    """Django's ``values(...).aggregate(...)``: the aggregates of the rows the values are
    of; grouped, distinct or joined values are not those rows, and are refused."""
    assert await Novel.objects.values("title").aggregate(pages=Sum("pages")) == {"pages": 650}
    long = Novel.objects.filter(pages__gt=150).values_list("title", flat=True)
    assert await long.aggregate(n=Count("*"), top=Max("pages")) == {"n": 2, "top": 300}
    assert long.aggregate_sync(n=Count("*")) == {"n": 2}
    assert await Writer.objects.values("name").aaggregate(novels=Count("novels")) == {"novels": 3}
    message = (
        "aggregate() of grouped, distinct or joined values (values(...).annotate(...), distinct(), a field across "
        "a relation holding many rows) is not supported: call aggregate() on the queryset before values()"
    )
    with raises(chakra.ProgrammingError, message):
        await Novel.objects.values("writer_id").annotate(n=Count("*")).aggregate(Sum("pages"))
    with raises(chakra.ProgrammingError, message):
        await Novel.objects.values("writer_id").distinct().aggregate(Sum("pages"))
    with raises(chakra.ProgrammingError, message):
        Writer.objects.values("novels__title").aggregate_sync(n=Count("*"))
