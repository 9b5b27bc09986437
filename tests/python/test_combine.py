"""Combined querysets: ``union``, ``intersection`` and ``difference`` (SQL's ``UNION``,
``INTERSECT``, ``EXCEPT``), read as instances or values, ordered, sliced and counted, and
the errors for what cannot be done to them."""

from __future__ import annotations

import re

import pytest

import chakra
from chakra import Count, F, Field, Integer, Model, Prefetch, Session, String
from chakra.functions import Lower
from conftest import recreate


class Shelf(Model):
    __tablename__ = "cb_shelves"
    id = Field(Integer, primary_key=True)
    name = Field(String(20))


class Volume(Model):
    __tablename__ = "cb_volumes"
    id = Field(Integer, primary_key=True)
    title = Field(String(20))
    year = Field(Integer)
    pages = Field(Integer)
    shelf_id = Field(Integer, nullable=True, references=Shelf, related_name="volumes")


@pytest.fixture(autouse=True)
def volumes() -> None:
    recreate(Shelf, Volume)
    top, low = Shelf.objects.bulk_create_sync([Shelf(name="top"), Shelf(name="low")])
    Volume.objects.bulk_create_sync(
        [
            Volume(title="Dune", year=1965, pages=412, shelf_id=top.id),
            Volume(title="Emma", year=1815, pages=474, shelf_id=low.id),
            Volume(title="Ulysses", year=1922, pages=730, shelf_id=top.id),
            Volume(title="Walden", year=1854, pages=352, shelf_id=None),
        ]
    )


OLD = Volume.objects.filter(year__lt=1900)
LONG = Volume.objects.filter(pages__gt=450)


def titles(volumes: list[Volume]) -> list[str]:
    return [v.title for v in volumes]


async def test_union_intersection_and_difference_combine_the_rows() -> None:
    assert titles(await OLD.union(LONG).order_by("title")) == ["Emma", "Ulysses", "Walden"]
    assert titles(await OLD.intersection(LONG)) == ["Emma"]
    assert titles(await OLD.difference(LONG).order_by("-title")) == ["Walden"]
    # Each row once, unless all=True; several at once.
    assert await OLD.union(LONG).count() == 3
    assert await OLD.union(LONG, all=True).count() == 4
    dune = Volume.objects.filter(title="Dune")
    assert titles(await OLD.union(LONG, dune).order_by("year")) == ["Emma", "Walden", "Ulysses", "Dune"]


async def test_combinations_run_in_the_order_given() -> None:
    # (OLD ∪ LONG) ∩ top shelf, not OLD ∪ (LONG ∩ top shelf), which SQL's INTERSECT would bind.
    top = Volume.objects.filter(shelf__name="top")
    assert titles(await OLD.union(LONG).intersection(top)) == ["Ulysses"]
    assert titles(await OLD.union(LONG.intersection(top)).order_by("title")) == ["Emma", "Ulysses", "Walden"]


async def test_combined_rows_are_ordered_sliced_and_read_as_values() -> None:
    both = OLD.union(LONG)
    assert titles(await both.order_by("-pages")[:2]) == ["Ulysses", "Emma"]
    assert titles(await both.order_by("pages")[1:]) == ["Emma", "Ulysses"]
    first, last = await both.order_by("year").first(), await both.order_by("year").last()
    assert first is not None and last is not None and (first.title, last.title) == ("Emma", "Ulysses")
    assert await both.exists() and not await OLD.intersection(Volume.objects.filter(year__gt=2000)).exists()
    assert await both.order_by("title").values_list("title", "year") == [
        ("Emma", 1815),
        ("Ulysses", 1922),
        ("Walden", 1854),
    ]
    # values() picks the same fields in every part (each shelf's name once).
    assert await Volume.objects.filter(year__gt=1900).union(OLD).values_list("shelf__name", flat=True).order_by(
        "shelf__name"
    ) == ["low", "top", None]
    assert await both.values("year").count() == 3
    # Values combine too, and read back to front.
    names = OLD.values_list("title", flat=True).union(LONG.values_list("title", flat=True), all=True)
    assert await names.order_by("title") == ["Emma", "Emma", "Ulysses", "Walden"]
    assert await names.order_by("title").reverse() == ["Walden", "Ulysses", "Emma", "Emma"]
    assert await OLD.values("title").difference(LONG.values("title")).order_by("-title").last() == {"title": "Walden"}
    with pytest.raises(TypeError, match=re.escape("union() combines values of the same fields (title)")):
        OLD.values("title").union(LONG.values("year"))  # type: ignore[arg-type]
    # As another query's subquery, every part's rows.
    assert await Volume.objects.filter(id__in=both).count() == 3
    shelved = Shelf.objects.filter(id__in=both.values_list("shelf_id", flat=True))
    assert await shelved.order_by("name").values_list("name", flat=True) == ["low", "top"]
    # A sliced part is the rows its slice picks: the two longest, the oldest.
    longest, oldest = Volume.objects.order_by("-pages")[:2], Volume.objects.order_by("year")[:1]
    assert titles(await longest.union(oldest).order_by("title")) == ["Emma", "Ulysses"]
    assert titles(await oldest.union(longest[1:]).order_by("title")) == ["Emma"]
    # Instances come into the session's identity map as any others.
    async with Session():
        emma = await Volume.objects.get(title="Emma")
        assert (await both.order_by("pages").all())[1] is emma


async def test_annotations_in_every_part_are_read_as_such() -> None:
    old = OLD.annotate(low=Lower("title"))
    long = LONG.annotate(low=Lower("title"))
    rows = await old.union(long).order_by("low")
    assert [(v.title, v.low) for v in rows] == [("Emma", "emma"), ("Ulysses", "ulysses"), ("Walden", "walden")]
    per_shelf = Shelf.objects.annotate(n=Count("volumes"))
    busy = per_shelf.filter(n__gte=2).union(per_shelf.filter(name="low")).order_by("-n")
    assert [(s.name, s.n) for s in await busy] == [("top", 2), ("low", 1)]


def test_what_combined_querysets_cannot_do_is_refused() -> None:
    both = OLD.union(LONG)
    for call, what in [
        (lambda: both.filter(year=1), "filter"),
        (lambda: both.exclude(year=1), "filter"),
        (lambda: both.update_sync(year=1), "update"),
        (lambda: both.delete_sync(), "delete from"),
        (lambda: both.aggregate_sync(n=Count("id")), "aggregate"),
        (lambda: both.values("year").annotate(n=Count("id")).all_sync(), "group"),
        (lambda: both.select_related("shelf"), "join the related rows of"),
        (lambda: both.none(), "empty"),
    ]:
        message = f"cannot {what} combined querysets (union, intersection, difference)"
        with pytest.raises(chakra.ProgrammingError, match=re.escape(message)):
            call()
    with pytest.raises(chakra.ProgrammingError, match="cannot annotate combined querysets"):
        both.annotate(low=Lower("title"))
    with pytest.raises(chakra.FieldError, match=re.escape("combined rows are ordered by `Lower(…)`")):
        both.order_by(Lower("title")).all_sync()
    with pytest.raises(chakra.FieldError, match=re.escape("combined values are ordered by `pages`")):
        both.values_list("title").order_by("pages").all_sync()
    with pytest.raises(chakra.ProgrammingError, match="cannot combine Volume rows with Shelf rows: combine querysets of one model"):
        OLD.union(Shelf.objects.all())  # type: ignore[arg-type]
    with pytest.raises(chakra.ProgrammingError, match="cannot combine a locked or select_related"):
        OLD.union(LONG.select_related("shelf"))
    with pytest.raises(chakra.ProgrammingError, match="ordered across a relation holding many rows"):
        OLD.union(LONG.order_by("shelf__volumes__title"))
    with pytest.raises(chakra.ProgrammingError, match="select the same annotations"):
        OLD.union(LONG.annotate(low=Lower("title")))
    with pytest.raises(chakra.ProgrammingError, match="does not prefetch"):
        OLD.union(LONG.prefetch_related(Prefetch("shelf")))
    with pytest.raises(TypeError, match="union\\(\\) combines querysets"):
        OLD.union(F("title"))  # type: ignore[arg-type]
