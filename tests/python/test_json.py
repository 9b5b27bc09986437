"""JSON lookups on a ``jsonb`` field, as Django's: keys (``data__owner__name``), their
comparisons, ``has_key``/``has_keys``/``has_any_keys``, ``contains``/``contained_by``,
``isnull`` on a key, and the errors for what they cannot take."""

from __future__ import annotations

import re

import pytest

import chakra
from chakra import JSON, Field, Integer, Model, Q
from conftest import recreate


class Doc(Model):
    __tablename__ = "js_docs"
    id = Field(Integer, primary_key=True)
    data = Field(JSON, nullable=True)
    title = Field(Integer, default=0)


@pytest.fixture(autouse=True)
def docs() -> None:
    recreate(Doc)
    Doc.objects.bulk_create_sync(
        [
            Doc(data={"owner": {"name": "ann", "age": 31}, "tags": ["a", "b"]}),
            Doc(data={"owner": {"name": "bob", "age": 17}, "draft": True}),
            Doc(data={"owner": None}),
            Doc(data=None),
        ]
    )


def ids(qs: chakra.QuerySet[Doc]) -> list[int]:
    return qs.order_by("id").values_list_sync("id", flat=True)


def test_keys_compare_as_json() -> None:
    assert ids(Doc.objects.filter(data__owner__name="ann")) == [1]
    assert ids(Doc.objects.filter(data__owner__age__gte=18)) == [1]
    assert ids(Doc.objects.filter(data__owner__age__lt=18)) == [2]
    assert ids(Doc.objects.filter(data__owner__name__ne="ann")) == [2]
    # None is JSON's null at a key; isnull asks whether the key leads anywhere.
    assert ids(Doc.objects.filter(data__owner=None)) == [3]
    assert ids(Doc.objects.filter(data__owner__isnull=True)) == [4]
    assert ids(Doc.objects.filter(data__draft__isnull=False)) == [2]
    # exclude keeps the rows where the key is missing, as for NULL columns.
    assert ids(Doc.objects.exclude(data__owner__name="ann")) == [2, 3, 4]
    assert ids(Doc.objects.filter(Q(data__owner__name="ann") | Q(data__draft=True))) == [1, 2]


def test_keys_and_containment() -> None:
    assert ids(Doc.objects.filter(data__has_key="draft")) == [2]
    assert ids(Doc.objects.filter(data__has_keys=["owner", "tags"])) == [1]
    assert ids(Doc.objects.filter(data__has_any_keys=("draft", "tags"))) == [1, 2]
    assert ids(Doc.objects.filter(data__owner__has_key="age")) == [1, 2]
    assert ids(Doc.objects.filter(data__contains={"owner": {"name": "bob"}})) == [2]
    assert ids(Doc.objects.filter(data__tags__contains=["b"])) == [1]
    assert ids(Doc.objects.filter(data__contained_by={"owner": None, "extra": 1})) == [3]
    # Updates and deletes pick rows by them too.
    assert Doc.objects.filter(data__has_key="draft").update_sync(title=7) == 1
    assert Doc.objects.filter(title=7).values_list_sync("id", flat=True) == [2]


def test_what_json_lookups_cannot_take() -> None:
    cases = [
        ({"data__owner__name__icontains": "a"}, "lookup `icontains` is not one of a JSON value (`data__owner__name`)"),
        ({"data__has_keys": "owner"}, "lookup `has_keys` takes a list of keys, got str"),
        ({"data__has_key": 3}, "lookup `has_key` takes keys as str, got int"),
        ({"data__owner__isnull": "yes"}, "lookup `isnull` needs True or False"),
        ({"title__has_key": "x"}, "lookup `title__has_key` needs a JSON field; Doc.title is not one"),
        ({"title__owner": 1}, "unknown lookup `owner` on field `title`"),
    ]
    for lookups, message in cases:
        with pytest.raises(chakra.FieldError, match=re.escape(message)):
            Doc.objects.filter(**lookups)


def test_key_paths_read_sort_group_and_compute() -> None:
    from chakra import Count, F
    from chakra.functions import KT, Length, Upper

    by_id = Doc.objects.order_by("id")
    # Read as JSON values (None where the path leads nowhere), an array's items by index.
    assert by_id.values_list_sync("data__owner__name", "data__tags__1") == [
        ("ann", "b"),
        ("bob", None),
        (None, None),
        (None, None),
    ]
    assert by_id.values_list_sync("data__owner", flat=True)[:2] == [{"name": "ann", "age": 31}, {"name": "bob", "age": 17}]
    # Sorted by (as jsonb sorts: numbers as numbers), grouped by, and in expressions.
    assert Doc.objects.filter(data__owner__age__isnull=False).order_by("-data__owner__age").values_list_sync(
        "id", flat=True
    ) == [1, 2]
    groups = Doc.objects.values("data__owner__name").annotate(n=Count("id")).order_by("data__owner__name")
    assert groups.all_sync()[:2] == [{"data__owner__name": "ann", "n": 1}, {"data__owner__name": "bob", "n": 1}]
    assert [d.owner for d in by_id.annotate(owner=F("data__owner__name")).all_sync()] == ["ann", "bob", None, None]
    # KT(): the text, for text functions and lookups.
    loud = by_id.annotate(loud=Upper(KT("data__owner__name")), size=Length(KT("data__owner__name")))
    assert [(d.loud, d.size) for d in loud.all_sync()][:2] == [("ANN", 3), ("BOB", 3)]
    assert by_id.values_list_sync(KT("data__owner__age"), flat=True)[:2] == ["31", "17"]
    with pytest.raises(chakra.FieldError, match=re.escape('KT("title__x") takes a JSON field and keys')):
        Doc.objects.values_list_sync(KT("title__x"))
    with pytest.raises(chakra.FieldError, match=re.escape("Upper() takes text; it was given F(\"data__owner__name\")")):
        Doc.objects.values_list_sync(Upper("data__owner__name"))
