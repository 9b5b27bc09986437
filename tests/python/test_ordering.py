"""A model's default order (``__ordering__``, Django's ``Meta.ordering``): what its
querysets are sorted by unless told otherwise; grouped and distinct values leave it out."""

from __future__ import annotations

import pytest

from chakra import Count, Field, Integer, Model, String
from conftest import recreate


class Writer(Model):
    __tablename__ = "od_writers"
    __ordering__ = ("-rank", "name")
    id = Field(Integer, primary_key=True)
    name = Field(String(20))
    rank = Field(Integer)
    country = Field(String(20))


class Essay(Model):
    __tablename__ = "od_essays"
    __ordering__ = "title"
    id = Field(Integer, primary_key=True)
    title = Field(String(20))
    writer_id = Field(Integer, references=Writer, related_name="essays")


class Piece(Model):
    __tablename__ = "od_pieces"
    __ordering__ = ("writer__name", "id")
    id = Field(Integer, primary_key=True)
    writer_id = Field(Integer, references=Writer, related_name="pieces")


@pytest.fixture(autouse=True)
def writers() -> None:
    recreate(Writer, Essay, Piece)
    ann, bob, _cy = Writer.objects.bulk_create_sync(
        [
            Writer(name="ann", rank=1, country="fr"),
            Writer(name="bob", rank=3, country="fr"),
            Writer(name="cy", rank=3, country="de"),
        ]
    )
    Essay.objects.bulk_create_sync(
        [Essay(title="z", writer_id=ann.id), Essay(title="a", writer_id=ann.id), Essay(title="m", writer_id=bob.id)]
    )


async def test_querysets_take_the_default_order_unless_told_otherwise() -> None:
    assert [w.name for w in await Writer.objects.all()] == ["bob", "cy", "ann"]
    assert [w.name for w in await Writer.objects.filter(country="fr")] == ["bob", "ann"]
    assert (await Writer.objects.first()).name == "bob"  # type: ignore[union-attr]
    assert (await Writer.objects.last()).name == "ann"  # type: ignore[union-attr]
    assert await Writer.objects.values_list("name", flat=True)[:2] == ["bob", "cy"]
    assert [w.name for w in await Writer.objects.order_by("name")] == ["ann", "bob", "cy"]
    assert [w.name async for w in Writer.objects.stream()] == ["bob", "cy", "ann"]
    assert "ORDER BY" not in Writer.objects.order_by().sql()[0]
    assert Writer.objects.ordered and Writer.objects.filter(country="fr").ordered
    assert not Writer.objects.order_by().ordered and Writer.objects.order_by().order_by("name").ordered
    # Related rows loaded for many rows follow their model's order too.
    writers = await Writer.objects.filter(name="ann").prefetch_related("essays")
    assert [e.title for e in writers[0].essays] == ["a", "z"]


async def test_groups_and_distinct_values_leave_it_out() -> None:
    per_country = await Writer.objects.values("country").annotate(n=Count("id")).order_by("country")
    assert per_country == [{"country": "de", "n": 1}, {"country": "fr", "n": 2}]
    assert sorted(await Writer.objects.values_list("country", flat=True).distinct()) == ["de", "fr"]
    assert await Writer.objects.count() == 3
    assert await Writer.objects.aggregate(top=Count("id")) == {"top": 3}


def test_an_unknown_field_is_refused_when_the_class_is_made() -> None:
    with pytest.raises(TypeError, match="__ordering__ takes field names"):

        class Bad(Model):
            __tablename__ = "od_bad"
            __ordering__ = ("nope",)
            id = Field(Integer, primary_key=True)


async def test_combined_and_subqueries_still_work() -> None:
    fr, top = Writer.objects.filter(country="fr"), Writer.objects.filter(rank=3)
    assert sorted(w.name for w in await fr.union(top)) == ["ann", "bob", "cy"]
    assert [w.name for w in await fr.intersection(top).order_by("name")] == ["bob"]
    assert await Essay.objects.filter(writer_id__in=Writer.objects.filter(country="fr")).count() == 3
    assert await Writer.objects.filter(country="fr").update(rank=0) == 2


async def test_an_order_across_relations_sorts_and_distinct_leaves_it_out() -> None:
    await Piece.objects.delete()
    await Essay.objects.delete()
    await Writer.objects.delete()
    ann, bob = await Writer.objects.bulk_create([Writer(name="bob", rank=1, country="x"), Writer(name="ann", rank=2, country="y")])
    await Piece.objects.bulk_create([Piece(writer_id=ann.id), Piece(writer_id=bob.id)])
    assert [p.writer_id for p in await Piece.objects.all()] == [bob.id, ann.id], "by the writer's name"
    assert len(await Piece.objects.distinct()) == 2


async def test_ordering_by_a_relation_follows_the_related_models_order() -> None:
    """As Django's: ``order_by("writer")`` sorts by the writer's ``__ordering__``
    (``-rank``, ``name``), ``"-writer"`` by its reverse."""
    by_writer = await Essay.objects.order_by("writer", "title").values_list("title", flat=True)
    assert by_writer == ["m", "a", "z"], "bob (rank 3) before ann (rank 1)"
    assert await Essay.objects.order_by("-writer", "title").values_list("title", flat=True) == ["a", "z", "m"]
