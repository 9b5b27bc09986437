"""Aggregates beyond Count/Sum/Avg/Min/Max: ``StdDev`` and ``Variance`` (Django's),
``BoolAnd``, ``BoolOr``, ``ArrayAgg`` and ``StringAgg`` (Django's PostgreSQL ones), over
all rows, per group and per row across relations, in the order asked."""

from __future__ import annotations

import decimal
import re

import pytest

from chakra import (
    ArrayAgg,
    Count,
    BoolAnd,
    BoolOr,
    Boolean,
    F,
    Field,
    FieldError,
    Integer,
    ManyToMany,
    Model,
    Numeric,
    Q,
    StdDev,
    String,
    StringAgg,
    Sum,
    Variance,
)
from chakra.functions import Upper
from conftest import recreate


class Label(Model):
    __tablename__ = "ag_labels"
    id = Field(Integer, primary_key=True)
    name = Field(String(20))


class Note(Model):
    __tablename__ = "ag_notes"
    id = Field(Integer, primary_key=True)
    title = Field(String(20))
    score = Field(Integer)
    price = Field(Numeric(8, 2))
    done = Field(Boolean)
    labels = ManyToMany(Label, related_name="notes")


class Reply(Model):
    __tablename__ = "ag_replies"
    id = Field(Integer, primary_key=True)
    body = Field(String(20), nullable=True)
    note_id = Field(Integer, references=Note, related_name="replies")


@pytest.fixture(autouse=True)
def notes() -> None:
    recreate(Label, Note, Reply, *Note._meta.throughs)
    rust, py, db = Label.objects.bulk_create_sync([Label(name="rust"), Label(name="py"), Label(name="db")])
    one, two, three = Note.objects.bulk_create_sync(
        [
            Note(title="one", score=1, price=decimal.Decimal("1.50"), done=True),
            Note(title="two", score=2, price=decimal.Decimal("2.50"), done=False),
            Note(title="three", score=3, price=decimal.Decimal("3.50"), done=True),
        ]
    )
    one.labels.add_sync(rust, py, db)
    two.labels.add_sync(py)
    Reply.objects.bulk_create_sync(
        [Reply(body="b", note_id=one.id), Reply(body="a", note_id=one.id), Reply(body=None, note_id=one.id)]
    )


async def test_spread_and_truth_over_all_rows() -> None:
    got = await Note.objects.aggregate(
        sd=StdDev("score"),
        sample=StdDev("score", sample=True),
        var=Variance("score"),
        money=Variance("price", sample=True),
        all_done=BoolAnd("done"),
        any_done=BoolOr("done"),
        done_of_big=BoolAnd("done", filter=Q(score__gt=2)),
    )
    assert got["sd"] == pytest.approx((2 / 3) ** 0.5) and isinstance(got["sd"], float)
    assert got["sample"] == pytest.approx(1.0) and got["var"] == pytest.approx(2 / 3)
    assert isinstance(got["money"], decimal.Decimal) and round(got["money"], 4) == 1
    assert (got["all_done"], got["any_done"], got["done_of_big"]) == (False, True, True)
    assert await Note.objects.filter(score__gt=9).aggregate(StdDev("score"), BoolOr("done")) == {
        "score__stddev": None,
        "done__boolor": None,
    }


async def test_collections_in_the_order_asked() -> None:
    got = await Note.objects.aggregate(
        titles=StringAgg("title", ", ", ordering="-score"),
        scores=ArrayAgg("score", ordering=["-done", "score"]),
        loud=ArrayAgg(Upper("title"), ordering=F("title").desc()),
        distinct=ArrayAgg("done", distinct=True, ordering="done"),
    )
    assert got == {
        "titles": "three, two, one",
        "scores": [1, 3, 2],
        "loud": ["TWO", "THREE", "ONE"],
        "distinct": [False, True],
    }
    per_state = await Note.objects.values("done").annotate(titles=ArrayAgg("title", ordering="title")).order_by("done")
    assert per_state == [{"done": False, "titles": ["two"]}, {"done": True, "titles": ["one", "three"]}]


async def test_collections_of_related_rows_per_row() -> None:
    notes = await Note.objects.annotate(
        label_names=ArrayAgg("labels__name", ordering="labels__name"),
        bodies=StringAgg("replies__body", "|", ordering="-replies__body"),
        kept=ArrayAgg("replies__body", ordering="replies__id"),
    ).order_by("id")
    assert [(n.title, n.label_names, n.bodies, n.kept) for n in notes] == [
        ("one", ["db", "py", "rust"], "b|a", ["b", "a", None]),
        ("two", ["py"], None, None),
        ("three", None, None, None),
    ]
    by_label = await Label.objects.values("name").annotate(
        titles=ArrayAgg("notes__title", ordering="-notes__title")
    ).order_by("name")
    assert by_label == [
        {"name": "db", "titles": ["one"]},
        {"name": "py", "titles": ["two", "one"]},
        {"name": "rust", "titles": ["one"]},
    ]


async def test_what_they_cannot_take_is_refused_naming_it() -> None:
    with pytest.raises(FieldError, match=re.escape("`x`: string_agg needs a text field; Note.score is not one")):
        await Note.objects.aggregate(x=StringAgg("score", ","))
    with pytest.raises(FieldError, match=re.escape("`x`: bool_and needs a boolean field; Note.title is not one")):
        await Note.objects.aggregate(x=BoolAnd("title"))
    with pytest.raises(FieldError, match=re.escape("`x`: stddev_pop needs a numeric field; Note.title is not one")):
        await Note.objects.aggregate(x=StdDev("title"))
    with pytest.raises(FieldError, match=re.escape("names fields of the rows it reaches (labels__field")):
        await Note.objects.annotate(x=ArrayAgg("labels__name", ordering="title"))
    with pytest.raises(FieldError, match=re.escape("unknown field `nope`")):
        await Note.objects.aggregate(x=ArrayAgg("title", ordering="nope"))
    with pytest.raises(TypeError, match=re.escape("StringAgg() takes a str delimiter, not int")):
        StringAgg("title", 1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=re.escape("ArrayAgg(ordering=) takes field names and expressions")):
        ArrayAgg("title", ordering=[1])  # type: ignore[list-item]


async def test_a_default_stands_for_none_over_no_values() -> None:
    none = Note.objects.filter(score__gt=9)
    assert await none.aggregate(total=Sum("score", default=0), labels=ArrayAgg("title", default=[])) == {
        "total": 0,
        "labels": [],
    }
    notes = await Note.objects.annotate(
        replies_n=Count("replies"), first_body=StringAgg("replies__body", ",", ordering="replies__body", default="-")
    ).order_by("id")
    assert [(n.replies_n, n.first_body) for n in notes] == [(3, "a,b"), (0, "-"), (0, "-")]
    # Computed by the database: a filter on it sees the default too.
    per_state = Note.objects.values("done").annotate(total=Sum("score", filter=Q(score__gt=2), default=0))
    assert [row["done"] for row in await per_state.filter(total=0)] == [False]
