"""Models and querysets: declaration, every lookup, Q objects, ordering, slicing, every
terminal (async and sync), streaming and bad input."""

from __future__ import annotations

import asyncio
import datetime as dt
import re

import pytest

import chakra
from chakra import Avg, Boolean, Count, DateTime, F, Field, Integer, Max, Min, Q, String, Sum, Text
from conftest import recreate


class Author(chakra.Model):
    __tablename__ = "qs_authors"
    id = Field(Integer, primary_key=True)
    name = Field(String(50))
    email = Field(String(100), nullable=True, unique=True)
    age = Field(Integer, nullable=True, index=True)
    bio = Field(Text, default="")
    is_active = Field(Boolean, default=True)
    joined = Field(DateTime(timezone=True), default=lambda: dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc))


class BlogPost(chakra.Model):
    id = Field(Integer, primary_key=True)
    title = Field(String(200))


PEOPLE = [
    ("Alice", "alice@example.com", 31, True),
    ("alfred", None, 17, True),
    ("Bob", "bob@example.com", 45, False),
    ("Carol", "carol@example.org", None, True),
    ("50% off_sale", "sale@example.com", 5, False),
]


@pytest.fixture(autouse=True)
def authors() -> None:
    recreate(Author, BlogPost)
    Author.objects.bulk_create_sync(Author(name=n, email=e, age=a, is_active=act) for n, e, a, act in PEOPLE)


async def names(qs: chakra.QuerySet[Author]) -> list[str]:
    return [a.name for a in await qs.order_by("id")]


def test_model_declaration() -> None:
    assert BlogPost.__tablename__ == "blog_post"
    assert list(Author._meta.fields) == ["id", "name", "email", "age", "bio", "is_active", "joined"]
    assert Author.__slots__ == ("id", "name", "email", "age", "bio", "is_active", "joined")
    a = Author(name="Z")
    assert not hasattr(a, "__dict__")
    assert a.to_dict() == {
        "id": None, "name": "Z", "email": None, "age": None, "bio": "", "is_active": True,
        "joined": dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc),
    }
    assert repr(a) == "<Author id=None>"
    assert issubclass(Author.DoesNotExist, chakra.DoesNotExist)
    assert issubclass(Author.MultipleObjectsReturned, chakra.MultipleObjectsReturned)
    assert not issubclass(Author.DoesNotExist, BlogPost.DoesNotExist)
    with pytest.raises(TypeError, match="unexpected field 'nmae'"):
        Author(nmae="x")


def test_model_declaration_errors() -> None:
    with pytest.raises(TypeError, match="no primary key"):
        class NoKey(chakra.Model):
            name = Field(String(10))
    with pytest.raises(TypeError, match="cannot start with"):
        class Reserved(chakra.Model):
            id = Field(Integer, primary_key=True)
            objects = Field(Integer)  # type: ignore[assignment]
    with pytest.raises(TypeError, match="column type"):
        Field(int)  # type: ignore[call-overload]


def test_abstract_models_share_fields() -> None:
    class Stamped(chakra.Model):
        __abstract__ = True
        created = Field(DateTime, nullable=True)

    class Note(Stamped):
        __tablename__ = "qs_notes"
        id = Field(Integer, primary_key=True)
        text = Field(Text)

    assert list(Note._meta.fields) == ["created", "id", "text"]
    recreate(Note)
    note = Note.objects.create_sync(text="hi", created=dt.datetime(2020, 1, 2))
    assert Note.objects.get_sync(id=note.id).created == dt.datetime(2020, 1, 2)
    chakra.drop_all_sync([Note])


@pytest.mark.parametrize(
    ("lookups", "expected"),
    [
        ({"name": "Alice"}, ["Alice"]),
        ({"name__exact": "Alice"}, ["Alice"]),
        ({"name__iexact": "alice"}, ["Alice"]),
        ({"name__contains": "li"}, ["Alice"]),
        ({"name__icontains": "AL"}, ["Alice", "alfred", "50% off_sale"]),
        ({"name__startswith": "A"}, ["Alice"]),
        ({"name__istartswith": "a"}, ["Alice", "alfred"]),
        ({"name__endswith": "ob"}, ["Bob"]),
        ({"name__iendswith": "OL"}, ["Carol"]),
        ({"name__contains": "%"}, ["50% off_sale"]),
        ({"name__contains": "_"}, ["50% off_sale"]),
        ({"age__gt": 31}, ["Bob"]),
        ({"age__gte": 31}, ["Alice", "Bob"]),
        ({"age__lt": 17}, ["50% off_sale"]),
        ({"age__lte": 17}, ["alfred", "50% off_sale"]),
        ({"age__ne": 31}, ["alfred", "Bob", "50% off_sale"]),
        ({"age__in": [17, 45, 99]}, ["alfred", "Bob"]),
        ({"age__in": []}, []),
        ({"name__in": ("Bob", "Carol")}, ["Bob", "Carol"]),
        ({"age__isnull": True}, ["Carol"]),
        ({"age__isnull": False}, ["Alice", "alfred", "Bob", "50% off_sale"]),
        ({"email": None}, ["alfred"]),
        ({"age__range": (17, 31)}, ["Alice", "alfred"]),
        ({"is_active": False}, ["Bob", "50% off_sale"]),
        ({"pk": 2}, ["alfred"]),
        ({"email__endswith": ".org", "is_active": True}, ["Carol"]),
        ({"name__regex": r"^[A-C][a-z]+$"}, ["Alice", "Bob", "Carol"]),
        ({"name__iregex": r"^al"}, ["Alice", "alfred"]),
        ({"name__search": "ALICE"}, ["Alice"]),
    ],
)
async def test_every_lookup(lookups: dict[str, object], expected: list[str]) -> None:
    assert await names(Author.objects.filter(**lookups)) == expected
    assert [a.name for a in Author.objects.filter(**lookups).order_by("id").all_sync()] == expected


async def test_exclude_keeps_rows_where_the_condition_is_unknown() -> None:
    assert await names(Author.objects.exclude(age__gt=20)) == ["alfred", "Carol", "50% off_sale"]


async def test_q_objects_combine() -> None:
    either = Q(name__startswith="A") | Q(age__gt=40)
    assert await names(Author.objects.filter(either)) == ["Alice", "Bob"]
    both = Q(is_active=True) & Q(age__lt=40)
    assert await names(Author.objects.filter(both)) == ["Alice", "alfred"]
    assert await names(Author.objects.filter(~Q(is_active=True))) == ["Bob", "50% off_sale"]
    assert await names(Author.objects.filter(Q(name="Bob") | Q(name="Carol"), is_active=True)) == ["Carol"]
    assert await names(Author.objects.filter(~(Q(name="Bob") | Q(age__isnull=True)))) == ["Alice", "alfred", "50% off_sale"]


async def test_f_compares_a_rows_fields_with_each_other() -> None:
    # ages 31, 17, 45, NULL, 5 against ids 1 to 5.
    assert await names(Author.objects.filter(age__gt=F("id") * 10)) == ["Alice", "Bob"]
    assert await names(Author.objects.filter(age__ne=F("id"))) == ["Alice", "alfred", "Bob"]
    # NULL compares unknown: exclude keeps Carol, as Django's does.
    assert await names(Author.objects.exclude(age__ne=F("id"))) == ["Carol", "50% off_sale"]
    assert await names(Author.objects.filter(Q(age=F("id")) | Q(name="Bob"))) == ["Bob", "50% off_sale"]
    assert Author.objects.filter(age__lte=10 * F("id") - 2).count_sync() == 2
    # Not the primary-key fast path: the key is computed per row.
    assert (await Author.objects.get(pk=F("age") - 30)).name == "Alice"
    # Text fields compare with text fields.
    assert await Author.objects.filter(name="Carol").update(bio=F("name")) == 1
    assert await names(Author.objects.filter(bio=F("name"))) == ["Carol"]


async def test_f_in_a_filter_is_checked_before_any_sql() -> None:
    cases = [
        ({"age__gt": F("name")}, "types differ"),
        ({"name__startswith": F("bio")}, "`name__startswith` takes a value"),
        ({"age__in": F("id")}, "`age__in` takes a value"),
        ({"name": F("bio") + 1}, "F arithmetic needs a numeric field; Author.name"),
        ({"age": F("nope")}, "unknown field `nope`"),
    ]
    for lookups, message in cases:
        with pytest.raises(chakra.FieldError, match=message):
            Author.objects.filter(**lookups)
    with pytest.raises(chakra.FieldError, match="types differ"):
        await Author.objects.update(name=F("id"))
    # A fraction widens arithmetic on an integer field (as in Django) rather than being
    # cut to the field's type: no integer age equals an id plus 1.5.
    widened = Author.objects.filter(age=F("id") + 1.5)
    assert "::float8" in repr(widened)
    assert await widened.count() == 0


async def test_aggregate() -> None:
    # ages 31, 17, 45, NULL, 5; two inactive.
    got = await Author.objects.aggregate(Sum("age"), Avg("age"), Min("name"), oldest=Max("age"), n=Count("*"))
    assert got == {"age__sum": 98, "age__avg": 24.5, "name__min": "50% off_sale", "oldest": 45, "n": 5}
    assert type(got["age__avg"]) is float, "Avg of an integer field is a float, as in Django"
    assert Author.objects.aggregate_sync(Count("age"), active=Count("is_active", distinct=True)) == {
        "age__count": 4,
        "active": 2,
    }
    # Filters apply; over no rows only Count is not None.
    assert await Author.objects.filter(is_active=False).aggregate(Sum("age")) == {"age__sum": 50}
    empty = Author.objects.filter(age__gt=100)
    assert await empty.aggregate(Sum("age"), Max("joined"), n=Count("id")) == {"age__sum": None, "joined__max": None, "n": 0}
    # A slice: over the rows it selects (the two oldest).
    assert await Author.objects.exclude(age=None).order_by("-age")[:2].aggregate(Sum("age")) == {"age__sum": 76}
    # Bad aggregates are FieldErrors before any SQL.
    with pytest.raises(chakra.FieldError, match="`name__sum`: sum needs a numeric field; Author.name"):
        await Author.objects.aggregate(Sum("name"))
    with pytest.raises(chakra.FieldError, match="max needs an ordered .* Author.is_active"):
        await Author.objects.aggregate(Max("is_active"))
    with pytest.raises(chakra.FieldError, match="unknown field `agee`"):
        await Author.objects.aggregate(Sum("agee"))
    with pytest.raises(chakra.FieldError, match="at least one"):
        await Author.objects.aggregate()
    with pytest.raises(TypeError, match="needs a name"):
        await Author.objects.aggregate(Count("*"))
    with pytest.raises(TypeError, match=re.escape("takes aggregates (Count, Sum, Avg, Min, Max, …), got 'age'")):
        await Author.objects.aggregate(total="age")  # type: ignore[arg-type]


async def test_an_aggregate_filter_counts_only_its_rows() -> None:
    # ages 31, 17, 45, NULL, 5; Bob (45) and "50% off_sale" (5) inactive.
    got = await Author.objects.aggregate(
        n=Count("*"),
        active=Count("*", filter=Q(is_active=True)),
        adult_age=Sum("age", filter=Q(age__gte=18) & ~Q(name__startswith="B")),
        inactive_oldest=Max("age", filter=Q(is_active=False)),
        none=Count("*", filter=Q(age__gt=100)),
    )
    assert got == {"n": 5, "active": 3, "adult_age": 31, "inactive_oldest": 45, "none": 0}
    # Per group, and in HAVING: the groups with more than one adult.
    groups = Author.objects.values("is_active").annotate(n=Count("*"), adults=Count("*", filter=Q(age__gte=18)))
    assert await groups.order_by("is_active") == [
        {"is_active": False, "n": 2, "adults": 1},
        {"is_active": True, "n": 3, "adults": 1},
    ]
    assert await groups.filter(adults__gte=2) == []
    assert repr(Count("*", filter=Q(is_active=True))) == "Count('*', filter=Q(is_active=True))"
    # A bad filter is the queryset's own error: a FieldError naming the field, no SQL.
    with pytest.raises(chakra.FieldError, match="unknown field `actve`"):
        await Author.objects.aggregate(n=Count("*", filter=Q(actve=True)))
    with pytest.raises(TypeError, match=r"filter=\) takes a Q, not dict"):
        Count("*", filter={"is_active": True})  # type: ignore[arg-type]


async def test_values_annotate_groups_rows() -> None:
    # is_active: Alice, alfred, Carol True (ages 31, 17, NULL); Bob, "50% off_sale" False (45, 5).
    per_state = Author.objects.values("is_active").annotate(Avg("age"), n=Count("*"), oldest=Max("age"))
    assert await per_state.order_by("is_active") == [
        {"is_active": False, "n": 2, "age__avg": 25.0, "oldest": 45},
        {"is_active": True, "n": 3, "age__avg": 24.0, "oldest": 31},
    ]
    # Ordered by an aggregate, sliced to the top group, as tuples or sync.
    top = Author.objects.values_list("is_active").annotate(n=Count("*")).order_by("-n")[:1]
    assert await top == [(True, 3)]
    assert top.all_sync() == [(True, 3)]
    # Filters pick the rows before grouping.
    adults = Author.objects.filter(age__gte=18).values("is_active").annotate(Count("id")).order_by("is_active")
    assert await adults == [{"is_active": False, "id__count": 1}, {"is_active": True, "id__count": 1}]
    # Grouped by two fields; the queryset's own order must be among them.
    pairs = await Author.objects.order_by("-is_active", "age").values_list("is_active", "age").annotate(n=Count("*"))
    assert pairs == [(True, 17, 1), (True, 31, 1), (True, None, 1), (False, 5, 1), (False, 45, 1)]
    # Groups kept by their aggregates (HAVING); fields still filter rows (WHERE).
    crowded = Author.objects.values("is_active").annotate(Max("age"), n=Count("*")).filter(n__gte=3)
    assert await crowded == [{"is_active": True, "n": 3, "age__max": 31}]
    young = Author.objects.values("is_active").annotate(Max("age")).filter(age__max__lt=40, age__gte=10)
    assert await young == [{"is_active": True, "age__max": 31}]
    assert await Author.objects.values("is_active").annotate(a=Avg("age")).filter(a=None) == []
    assert Author.objects.values_list("is_active").annotate(n=Count("*")).filter(n__gt=1, n__lt=3).all_sync() == [(False, 2)]
    with pytest.raises(chakra.FieldError, match="filtered with exact, ne, gt, gte, lt or lte, not `in`"):
        await Author.objects.values("is_active").annotate(n=Count("*")).filter(n__in=[1, 2])
    with pytest.raises(chakra.FieldError, match="grouped values are ordered by `name`"):
        await Author.objects.order_by("name").values("is_active").annotate(n=Count("*"))
    with pytest.raises(chakra.FieldError, match="unknown field `m`"):
        await Author.objects.values("is_active").annotate(n=Count("*")).order_by("-m")
    with pytest.raises(chakra.FieldError, match="no aggregates"):
        await Author.objects.values_list("is_active", flat=True).annotate(n=Count("*"))
    with pytest.raises(chakra.FieldError, match="sum needs a numeric field; Author.name"):
        await Author.objects.values("is_active").annotate(Sum("name"))
    with pytest.raises(chakra.FieldError, match="the aggregate `age` is named as a field of Author"):
        await Author.objects.values("is_active").annotate(age=Max("age"))
    with pytest.raises(chakra.ProgrammingError, match="cannot group a sliced queryset"):
        Author.objects.all()[:2].values("is_active").annotate(n=Count("*"))


async def test_explain() -> None:
    plan = await Author.objects.filter(age__gt=40).explain()
    assert "on qs_authors" in plan and "(age > " in plan, plan
    assert "actual time" not in plan
    analyzed = Author.objects.filter(name="Bob").explain_sync(analyze=True)
    assert "actual time" in analyzed and "Execution Time" in analyzed, analyzed


async def test_values_count_exist_and_pick_one_as_querysets_do() -> None:
    ages = Author.objects.values_list("age", flat=True)
    assert (await ages.count(), ages.count_sync()) == (5, 5)
    # Distinct values and groups count as such, in one statement.
    assert await ages.distinct().count() == 5  # 31, 17, 45, NULL, 5
    assert await Author.objects.values("is_active").distinct().count() == 2
    per_state = Author.objects.values("is_active").annotate(n=Count("*"))
    assert await per_state.count() == 2
    assert await per_state.filter(n__gt=2).count() == 1
    assert await ages.filter(age__gt=100).exists() is False
    assert per_state.exists_sync() is True
    assert await ages[1:3].count() == 2, "a window's rows"
    # The first in the order, else by primary key (groups: by their fields).
    assert await ages.first() == 31 and ages.first_sync() == 31
    assert await ages.order_by("-age").first() is None, "NULL sorts first descending"
    assert await ages.filter(age__gt=100).first() is None
    assert await per_state.first() == {"is_active": False, "n": 2}
    assert await per_state.order_by("-n").first() == {"is_active": True, "n": 3}
    assert await Author.objects.values("name", "age").get(email="bob@example.com") == {"name": "Bob", "age": 45}
    assert Author.objects.values_list("name", flat=True).get_sync(age=17) == "alfred"
    with pytest.raises(Author.DoesNotExist):
        await ages.get(age=99)
    with pytest.raises(Author.MultipleObjectsReturned):
        await ages.get(is_active=True)


async def test_bulk_create_skips_or_updates_conflicting_rows() -> None:
    alice = await Author.objects.get(email="alice@example.com")
    # Skipped: the existing row stays as it was, the new one goes in.
    skipped = await Author.objects.bulk_create(
        [Author(name="Alice again", email="alice@example.com"), Author(name="Dan", email="dan@example.com")],
        ignore_conflicts=True,
    )
    assert [a.id for a in skipped] == [None, None], "which rows went in is not known, as in Django"
    assert (await Author.objects.get(email="alice@example.com")).name == "Alice"
    assert await Author.objects.filter(name="Dan").count() == 1
    # Upserted: the conflicting row's update_fields are written, and every instance
    # holds its row as stored.
    rows = [Author(name="Alicia", email="alice@example.com", age=32), Author(name="Eve", email="eve@example.com")]
    done = Author.objects.bulk_create_sync(
        rows, update_conflicts=True, unique_fields=["email"], update_fields=["name", "age"]
    )
    assert (done[0].id, done[0].name, done[0].age, done[0].bio) == (alice.id, "Alicia", 32, "")
    assert done[1].id is not None and done[1].name == "Eve"
    stored = await Author.objects.get(id=alice.id)
    assert (stored.name, stored.age) == ("Alicia", 32)
    assert await Author.objects.count() == 7
    # In a session, its pending changes go first, and its instance of the row stays the one.
    async with chakra.Session() as session:
        held = await Author.objects.get(email="bob@example.com")
        held.name = "Robert"
        (upserted,) = await Author.objects.bulk_create(
            [Author(name="ignored", email="bob@example.com", age=46)],
            update_conflicts=True,
            unique_fields=["email"],
            update_fields=["age"],
        )
        assert (upserted.name, upserted.age) == ("Robert", 46)
        assert await Author.objects.get(email="bob@example.com") is held
        # The held instance holds the row as the upsert left it, and later changes to it
        # are written.
        assert (held.name, held.age) == ("Robert", 46)
        assert not session.is_modified(held)
        held.bio = "updated"
    stored = await Author.objects.get(email="bob@example.com")
    assert (stored.name, stored.age, stored.bio) == ("Robert", 46, "updated")
    # Rolled back, the upsert's values leave the held instance too.
    async with chakra.Session() as session:
        held = await Author.objects.get(email="bob@example.com")
        await Author.objects.bulk_create(
            [Author(name="x", email="bob@example.com", age=47)],
            update_conflicts=True,
            unique_fields=["email"],
            update_fields=["age"],
        )
        assert held.age == 47 and not session.is_modified(held)
        await session.rollback()
        # The value the upsert read back goes with it (it is no change of the user's, to
        # save later): the instance holds what it held before.
        assert held.age == 46 and not session.is_modified(held)
    # By primary key too.
    again = await Author.objects.bulk_create(
        [Author(id=alice.id, name="Al", email="x@example.com")],
        update_conflicts=True,
        unique_fields=["pk"],
        update_fields=["name"],
    )
    assert (again[0].name, again[0].email) == ("Al", "alice@example.com"), "the email was not among update_fields"
    # One statement: a row conflicting twice in it writes nothing.
    twice = [Author(name="F1", email="f@example.com"), Author(name="F2", email="f@example.com")]
    with pytest.raises(chakra.Error, match="cannot affect row a second time"):
        await Author.objects.bulk_create(twice, update_conflicts=True, unique_fields=["email"], update_fields=["name"])
    assert await Author.objects.filter(email="f@example.com").count() == 0
    # What cannot work is refused before any SQL.
    with pytest.raises(ValueError, match="ignore_conflicts or update_conflicts, not both"):
        await Author.objects.bulk_create(twice, ignore_conflicts=True, update_conflicts=True)
    with pytest.raises(chakra.FieldError, match="needs unique_fields .* and update_fields"):
        await Author.objects.bulk_create(twice, update_conflicts=True, unique_fields=["email"])
    with pytest.raises(chakra.FieldError, match="cannot update the primary key `id`"):
        await Author.objects.bulk_create(twice, update_conflicts=True, unique_fields=["email"], update_fields=["id"])
    with pytest.raises(chakra.FieldError, match="unknown field `mail`"):
        await Author.objects.bulk_create(twice, update_conflicts=True, unique_fields=["mail"], update_fields=["name"])
    with pytest.raises(TypeError, match="takes a list of field names, not one string"):
        await Author.objects.bulk_create(twice, update_conflicts=True, unique_fields="email", update_fields=["name"])
    with pytest.raises(ValueError, match="update_fields=\\) goes with update_conflicts=True"):
        await Author.objects.bulk_create(twice, update_fields=["name"])
    assert await Author.objects.filter(email="f@example.com").count() == 0


async def test_distinct_values() -> None:
    await Author.objects.filter(name__in=["Bob", "Carol"]).update(age=31)
    ages = await Author.objects.distinct().order_by("age").values_list("age", flat=True)
    assert ages == [5, 17, 31]
    assert Author.objects.distinct().values_list_sync("is_active", "age") != []
    assert await Author.objects.distinct().values("is_active") in (
        [{"is_active": True}, {"is_active": False}],
        [{"is_active": False}, {"is_active": True}],
    )
    # Counting and aggregating distinct rows: of whole rows (every row is distinct).
    assert await Author.objects.distinct().count() == 5
    assert await Author.objects.aggregate(ages=Count("age", distinct=True)) == {"ages": 3}
    with pytest.raises(chakra.FieldError, match="ordered by `name`, which they do not include"):
        await Author.objects.distinct().order_by("name").values_list("age", flat=True)
    # Values refine as querysets do, Django's order of calls.
    assert await Author.objects.values_list("age", flat=True).filter(age__lt=30).distinct().order_by("age") == [5, 17]
    active = Author.objects.values("is_active").exclude(age=None).annotate(n=Count("*")).order_by("-n")
    assert await active == [{"is_active": True, "n": 3}, {"is_active": False, "n": 2}]


async def test_last_latest_earliest_in_bulk_and_reverse() -> None:
    # ids 1 to 5: Alice, alfred, Bob, Carol, "50% off_sale"; ages 31, 17, 45, NULL, 5.
    assert (await Author.objects.last()).name == "50% off_sale"  # type: ignore[union-attr]
    assert Author.objects.order_by("-id").last_sync().name == "Alice"  # type: ignore[union-attr]
    assert await Author.objects.filter(age__gt=100).last() is None
    # Reversed: age ascending (NULL last, as PostgreSQL sorts it), then name descending.
    reversed_ = await Author.objects.order_by("-age", "name").reverse()
    assert [a.name for a in reversed_] == ["50% off_sale", "alfred", "Alice", "Bob", "Carol"]
    assert (await Author.objects.exclude(age=None).latest("age")).name == "Bob"
    assert Author.objects.exclude(age=None).latest_sync("-age").name == "50% off_sale"
    assert (await Author.objects.exclude(age=None).earliest("age")).name == "50% off_sale"
    assert Author.objects.earliest_sync("is_active", "-id").name == "50% off_sale"
    with pytest.raises(Author.DoesNotExist):
        await Author.objects.filter(age__gt=100).latest("age")
    with pytest.raises(chakra.FieldError, match="at least one field"):
        await Author.objects.latest()
    with pytest.raises(chakra.FieldError, match="unknown field `agee`"):
        await Author.objects.earliest("agee")
    with pytest.raises(chakra.ProgrammingError, match="cannot reverse a sliced"):
        Author.objects.all()[:2].reverse()
    by_pk = await Author.objects.in_bulk([1, 3, 99])
    assert {k: v.name for k, v in by_pk.items()} == {1: "Alice", 3: "Bob"}
    assert len(Author.objects.filter(is_active=True).in_bulk_sync()) == 3
    assert await Author.objects.in_bulk([]) == {}
    by_email = await Author.objects.in_bulk(["bob@example.com", "zed@example.com"], field_name="email")
    assert {k: v.name for k, v in by_email.items()} == {"bob@example.com": "Bob"}
    with pytest.raises(chakra.FieldError, match=re.escape("in_bulk(field_name='name'): Author.name is not a unique")):
        Author.objects.in_bulk_sync(field_name="name")


async def test_contains_asks_whether_a_row_is_among_the_matching_ones() -> None:
    bob = await Author.objects.get(name="Bob")
    assert await Author.objects.filter(age__gt=40).contains(bob)
    assert not Author.objects.filter(age__lt=40).contains_sync(bob)
    with pytest.raises(ValueError, match=re.escape("contains() takes a saved Author")):
        await Author.objects.contains(Author(name="new"))
    with pytest.raises(TypeError, match=re.escape("contains() takes an instance of Author, not <object")):
        await Author.objects.contains(object())  # type: ignore[arg-type]


async def test_ordering_limit_offset_and_slicing() -> None:
    by_age = Author.objects.filter(age__isnull=False).order_by("-age")
    assert [a.name for a in await by_age] == ["Bob", "Alice", "alfred", "50% off_sale"]
    assert [a.name for a in await by_age.limit(2)] == ["Bob", "Alice"]
    assert [a.name for a in await by_age.offset(1).limit(2)] == ["Alice", "alfred"]
    assert [a.name for a in await by_age[1:3]] == ["Alice", "alfred"]
    assert [a.name for a in await by_age[1:][1:]] == ["alfred", "50% off_sale"]
    assert [a.name for a in await by_age[:3][1:5]] == ["Alice", "alfred"]
    assert [a.name for a in await Author.objects.order_by("is_active", "-name")] == [
        "Bob", "50% off_sale", "alfred", "Carol", "Alice"]
    with pytest.raises(TypeError, match="sliced, not indexed"):
        Author.objects.all()[0]  # type: ignore[index]
    with pytest.raises(ValueError):
        Author.objects.all()[-1:]


async def test_querysets_are_lazy_and_immutable() -> None:
    base = Author.objects.filter(is_active=True)
    narrowed = base.filter(age__gt=20)
    assert len(await base) == 3
    assert len(await narrowed) == 1
    assert "WHERE" in base.sql()[0] and base.sql()[1] == [True]
    assert (await narrowed.all())[0].name == "Alice"


async def test_none_matches_no_row_whatever_else_is_asked() -> None:
    nothing = Author.objects.filter(is_active=True).none()
    assert await nothing == [] and await nothing.count() == 0 and not await nothing.exists()
    assert await nothing.first() is None
    assert await nothing.values_list("name", flat=True) == []
    assert await nothing.update(age=1) == 0 and await nothing.delete() == 0
    assert await Author.objects.count() == 5, "nothing was written"
    assert await Author.objects.none().filter(name="Alice") == []


async def test_terminals() -> None:
    assert await Author.objects.count() == 5
    assert Author.objects.count_sync() == 5
    assert await Author.objects.filter(age__gt=100).count() == 0
    assert await Author.objects.filter(age__gt=40).exists()
    assert not Author.objects.filter(age__gt=100).exists_sync()
    first = await Author.objects.first()
    assert first is not None and first.name == "Alice"
    assert (await Author.objects.exclude(age=None).order_by("-age").first()).name == "Bob"  # type: ignore[union-attr]
    assert await Author.objects.filter(age__gt=100).first() is None
    assert Author.objects.filter(name="Bob").first_sync().age == 45  # type: ignore[union-attr]

    bob = await Author.objects.get(name="Bob")
    assert bob.email == "bob@example.com"
    assert (await Author.objects.get(id=bob.id)).name == "Bob"
    assert Author.objects.get_sync(pk=bob.id).name == "Bob"
    with pytest.raises(Author.DoesNotExist):
        await Author.objects.get(id=9999)
    with pytest.raises(chakra.DoesNotExist):
        Author.objects.get_sync(name="nobody")
    with pytest.raises(Author.MultipleObjectsReturned):
        await Author.objects.get(is_active=True)

    assert await Author.objects.values("name", "age") == [
        {"name": n, "age": a} for n, _, a, _ in PEOPLE]
    assert Author.objects.filter(age__gt=40).values_sync() == [
        {"id": 3, "name": "Bob", "email": "bob@example.com", "age": 45, "bio": "", "is_active": False,
         "joined": dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)}]
    assert await Author.objects.order_by("-id").values_list("id", "name") == [
        (5, "50% off_sale"), (4, "Carol"), (3, "Bob"), (2, "alfred"), (1, "Alice")]
    assert await Author.objects.order_by("id").values_list("age", flat=True) == [31, 17, 45, None, 5]
    assert Author.objects.order_by("id").values_list_sync("name", flat=True)[0] == "Alice"


async def test_create_update_delete() -> None:
    dan = await Author.objects.create(name="Dan", age=60)
    assert dan.id == 6 and dan.bio == "" and dan.is_active is True
    assert (await Author.objects.get(id=6)).name == "Dan"
    eve = Author.objects.create_sync(name="Eve")
    assert eve.id == 7

    assert await Author.objects.filter(age__lt=20).update(bio="young") == 2
    assert sorted(await Author.objects.filter(bio="young").values_list("name", flat=True)) == ["50% off_sale", "alfred"]
    assert Author.objects.filter(name="Eve").update_sync(age=1, is_active=False) == 1
    assert (await Author.objects.get(name="Eve")).age == 1

    assert await Author.objects.filter(is_active=False).delete() == 3
    assert Author.objects.filter(name="Dan").delete_sync() == 1
    assert await Author.objects.count() == 3
    with pytest.raises(chakra.ProgrammingError, match="sliced"):
        await Author.objects.all()[:1].delete()


async def test_bulk_update_writes_each_objects_fields_in_one_statement() -> None:
    authors = await Author.objects.order_by("id")
    for a in authors:
        a.age = (a.age or 0) + 100
        a.bio = f"bio of {a.name}"
    authors[0].name = "not written"  # not among the fields
    assert await Author.objects.bulk_update(authors, ["age", "bio"]) == 5
    stored = {a.id: (a.name, a.age, a.bio) for a in await Author.objects.all()}
    assert stored[1] == ("Alice", 131, "bio of Alice")
    assert stored[4] == ("Carol", 100, "bio of Carol")
    # A key given twice takes the last values; NULLs are written; sync twin.
    first, again = Author(id=2, age=1), Author(id=2, age=None)
    assert Author.objects.bulk_update_sync([first, again], ["age"]) == 1
    assert (await Author.objects.get(id=2)).age is None
    # Bad input names the culprit and writes nothing.
    authors[1].age = "old"  # type: ignore[assignment]
    with pytest.raises(chakra.DataError, match="Author.age"):
        await Author.objects.bulk_update(authors, ["age"])
    with pytest.raises(chakra.FieldError, match="unknown field `agee`"):
        await Author.objects.bulk_update(authors, ["agee"])
    with pytest.raises(chakra.FieldError, match="cannot change it"):
        await Author.objects.bulk_update(authors, ["id"])
    with pytest.raises(chakra.FieldError, match="needs the fields"):
        await Author.objects.bulk_update(authors, [])
    with pytest.raises(chakra.ProgrammingError, match="has no primary key"):
        await Author.objects.bulk_update([Author(name="new")], ["name"])
    with pytest.raises(TypeError, match="not one string"):
        await Author.objects.bulk_update(authors, "age")
    assert (await Author.objects.get(id=3)).age == 145
    assert await Author.objects.bulk_update([], ["age"]) == 0


async def test_bulk_create_fills_primary_keys_in_order() -> None:
    made = await Author.objects.bulk_create(Author(name=f"bulk{i}", age=i) for i in range(300))
    assert [a.id for a in made] == list(range(6, 306))
    assert all(a.name == f"bulk{a.age}" for a in made)
    assert await Author.objects.filter(name__startswith="bulk").count() == 300
    assert await Author.objects.bulk_create([]) == []


async def test_values_list_named_gives_named_tuples() -> None:
    rows = await Author.objects.filter(age__gt=30).order_by("age").values_list("name", "age", named=True)
    assert [(r.name, r.age) for r in rows] == [("Alice", 31), ("Bob", 45)] and rows[0] == ("Alice", 31)
    grouped = await Author.objects.values_list("is_active", named=True).annotate(n=Count("id")).order_by("is_active")
    assert [(g.is_active, g.n) for g in grouped] == [(False, 2), (True, 3)]
    first = Author.objects.order_by("id").values_list("id", "email", named=True).first_sync()
    assert first is not None and first.id == 1 and first.email == "alice@example.com"
    with pytest.raises(TypeError, match="flat=True and named=True"):
        Author.objects.values_list("id", flat=True, named=True)


async def test_q_xor_keeps_rows_where_an_odd_number_holds() -> None:
    young, active = Q(age__lt=30), Q(is_active=True)
    expected = [a.name for a in await Author.objects.order_by("id") if (a.age is not None and a.age < 30) != a.is_active]
    assert await names(Author.objects.filter(young ^ active)) == expected
    three = young ^ active ^ Q(name__startswith="A")
    assert len(await Author.objects.filter(three)) == len(
        [
            a
            for a in await Author.objects.all()
            if sum([a.age is not None and a.age < 30, a.is_active, a.name.startswith("A")]) % 2 == 1
        ]
    )


async def test_bulk_writes_in_batches_are_all_or_nothing() -> None:
    before = await Author.objects.count()
    made = await Author.objects.bulk_create([Author(name=f"b{i}", email=f"b{i}@x") for i in range(25)], batch_size=10)
    assert [a.name for a in made] == [f"b{i}" for i in range(25)] and all(a.id for a in made)
    for author in made:
        author.age = 7
    assert await Author.objects.bulk_update(made, ["age"], batch_size=4) == 25
    assert await Author.objects.filter(age=7).count() == 25
    # A unique email repeated in the third batch: the first two are not kept either.
    clash = [Author(name=f"c{i}", email=f"c{i}@x") for i in range(20)] + [Author(name="dup", email="b0@x")]
    with pytest.raises(chakra.IntegrityError):
        await Author.objects.bulk_create(clash, batch_size=10)
    assert await Author.objects.count() == before + 25
    with pytest.raises(ValueError, match="batch_size must be a positive int, got 0"):
        Author.objects.bulk_create_sync([Author(name="z")], batch_size=0)
    async with chakra.Session():
        await Author.objects.bulk_create([Author(name=f"s{i}") for i in range(3)], 2)
    assert await Author.objects.filter(name__in=["s0", "s1", "s2"]).count() == 3


async def test_stream_yields_instances_and_batches() -> None:
    await Author.objects.bulk_create(Author(name=f"s{i}", age=i) for i in range(1234))
    seen = [a.age async for a in Author.objects.filter(name__startswith="s").order_by("age").stream()]
    assert seen == list(range(1234))
    sizes = [len(batch) async for batch in Author.objects.filter(name__startswith="s").stream(batch_size=500)]
    assert sizes == [500, 500, 234]
    assert [a.name async for a in Author.objects.filter(name="Bob")] == ["Bob"]
    assert sum(1 for _ in Author.objects.filter(name__startswith="s").stream_sync()) == 1234
    assert [len(b) for b in Author.objects.filter(name__startswith="s").stream_sync(batch_size=1000)] == [1000, 234]
    # Django's names: iterator() and aiterator(), chunk_size rows fetched at a time.
    ordered = Author.objects.filter(name__startswith="s").order_by("age")
    assert [a.age async for a in ordered.aiterator(chunk_size=100)] == list(range(1234))
    assert [a.age for a in ordered.iterator(chunk_size=7)] == list(range(1234))
    with pytest.raises(ValueError, match="chunk_size must be at least 1"):
        ordered.iterator(chunk_size=0)


async def test_breaking_out_of_a_stream_releases_the_connection() -> None:
    await Author.objects.bulk_create(Author(name=f"s{i}") for i in range(5000))
    stream = Author.objects.filter(name__startswith="s").stream(batch_size=10)
    async for _batch in stream:
        break
    await stream.aclose()
    status = chakra.default_database().status()
    for _ in range(50):
        if status["in_use"] == 0:
            break
        await asyncio.sleep(0.02)
        status = chakra.default_database().status()
    assert status["in_use"] == 0
    assert await Author.objects.count() == 5005


async def test_concurrent_gets_by_primary_key() -> None:
    got = await asyncio.gather(*(Author.objects.get(id=i) for i in (1, 2, 3, 4, 5, 1)))
    assert [a.name for a in got] == [p[0] for p in PEOPLE] + ["Alice"]
    with pytest.raises(Author.DoesNotExist):
        await asyncio.gather(Author.objects.get(id=1), Author.objects.get(id=404))


async def test_unknown_fields_and_lookups_fail_before_any_sql() -> None:
    with pytest.raises(chakra.FieldError, match="unknown field `nmae`") as info:
        Author.objects.filter(nmae="x")
    assert "name, email" in str(info.value)
    with pytest.raises(chakra.FieldError, match="unknown lookup `startswit` on field `name`"):
        Author.objects.filter(name__startswit="A")
    with pytest.raises(chakra.FieldError, match="needs a list"):
        Author.objects.filter(age__in=5)
    with pytest.raises(chakra.FieldError, match="True or False"):
        Author.objects.filter(age__isnull="yes")
    with pytest.raises(chakra.FieldError, match="two values"):
        Author.objects.filter(age__range=(1,))
    with pytest.raises(chakra.FieldError, match="needs a text field"):
        Author.objects.filter(age__startswith="1")
    with pytest.raises(chakra.FieldError, match="unknown field `nope`"):
        Author.objects.order_by("-nope")
    with pytest.raises(chakra.FieldError):
        await Author.objects.values("nope")
    with pytest.raises(chakra.FieldError):
        await Author.objects.update(nope=1)
    with pytest.raises(chakra.DataError, match="Author.age expects an int, got str"):
        Author.objects.filter(age="old")


async def test_wrong_types_fail_naming_the_field_and_write_nothing() -> None:
    with pytest.raises(chakra.DataError, match=r"Author\.age expects an int, got str 'x'"):
        await Author.objects.create(name="Bad", age="x")
    with pytest.raises(chakra.DataError, match=r"Author\.name is at most 50 characters"):
        await Author.objects.create(name="x" * 51)
    with pytest.raises(chakra.DataError, match="out of range"):
        await Author.objects.create(name="Big", age=2**40)
    with pytest.raises(chakra.DataError, match="naive"):
        await Author.objects.create(name="Naive", joined=dt.datetime(2024, 1, 1))
    batch = [Author(name="ok1"), Author(name="ok2", is_active="yes")]  # type: ignore[arg-type]
    with pytest.raises(chakra.DataError, match="Author.is_active expects a bool"):
        await Author.objects.bulk_create(batch)
    assert await Author.objects.count() == 5
    with pytest.raises(chakra.IntegrityError) as info:
        await Author.objects.create(name="Dup", email="bob@example.com")
    assert info.value.constraint == "qs_authors_email_key"
    with pytest.raises(chakra.IntegrityError, match="null"):
        await Author.objects.create(name=None)
    assert await Author.objects.count() == 5


def test_ddl_quotes_identifiers_and_declares_constraints() -> None:
    schema = Author._meta.schema
    assert schema is not None
    create = schema.create_sql()
    assert create[0] == (
        'CREATE TABLE IF NOT EXISTS "qs_authors" ("id" integer GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, '
        '"name" varchar(50) NOT NULL, "email" varchar(100) UNIQUE, "age" integer, "bio" text NOT NULL, '
        '"is_active" boolean NOT NULL, "joined" timestamp with time zone NOT NULL)'
    )
    assert create[1] == 'CREATE INDEX IF NOT EXISTS "qs_authors_age_idx" ON "qs_authors" ("age")'
    assert schema.drop_sql() == 'DROP TABLE IF EXISTS "qs_authors"'


class Shelf(chakra.Model):
    __tablename__ = "qs_shelves"
    id = Field(Integer, primary_key=True)
    label = Field(String(20))
    parent_id = Field(Integer, nullable=True, references="self", on_delete="set null")


class Book(chakra.Model):
    __tablename__ = "qs_books"
    id = Field(Integer, primary_key=True)
    title = Field(String(50))
    author_id = Field(Integer, references=Author, on_delete="cascade", index=True)
    shelf_id = Field(Integer, nullable=True, references="qs_shelves.id")


async def test_foreign_keys_are_declared_ordered_and_enforced() -> None:
    # Given in the wrong order, created referenced-first and dropped in reverse.
    chakra.drop_all_sync([Book, Shelf])
    chakra.create_all_sync([Book, Shelf, Author])
    ddl = Book._meta.require_schema().create_sql()[0]
    assert '"author_id" integer NOT NULL REFERENCES "qs_authors" ("id") ON DELETE CASCADE' in ddl
    assert '"shelf_id" integer REFERENCES "qs_shelves" ("id") ON DELETE NO ACTION' in ddl
    top = await Shelf.objects.create(label="top")
    low = await Shelf.objects.create(label="low", parent_id=top.id)
    alice = await Author.objects.get(name="Alice")
    await Book.objects.bulk_create([Book(title="one", author_id=alice.id, shelf_id=low.id), Book(title="two", author_id=alice.id)])
    # A missing row referred to: IntegrityError naming the constraint, nothing written.
    with pytest.raises(chakra.IntegrityError) as info:
        await Book.objects.create(title="orphan", author_id=10**6)
    assert info.value.constraint == "qs_books_author_id_fkey"
    # Deleting a referenced row: cascade, set null, or refused (no action).
    with pytest.raises(chakra.IntegrityError) as info:
        await Shelf.objects.filter(id=low.id).delete()
    assert info.value.constraint == "qs_books_shelf_id_fkey"
    await Book.objects.filter(shelf_id=low.id).update(shelf_id=None)
    await Shelf.objects.filter(id=top.id).delete()
    assert (await Shelf.objects.get(id=low.id)).parent_id is None
    await Author.objects.filter(id=alice.id).delete()
    assert await Book.objects.count() == 0
    chakra.drop_all_sync([Author, Shelf, Book])
    assert await chakra.fetchval("SELECT count(*) FROM pg_tables WHERE tablename IN ('qs_books', 'qs_shelves')") == 0


def test_foreign_key_declarations_are_checked() -> None:
    with pytest.raises(ValueError, match='set null" needs nullable=True'):
        Field(Integer, references=Author, on_delete="set null")
    with pytest.raises(ValueError, match="on_delete must be one of"):
        Field(Integer, references=Author, on_delete="explode")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match='"table.column"'):
        Field(Integer, references="qs_authors")
    with pytest.raises(TypeError, match="needs a concrete model"):

        class Dangling(chakra.Model):
            id = Field(Integer, primary_key=True)
            owner = Field(Integer, references=int)

    class Egg(chakra.Model):
        __tablename__ = "qs_eggs"
        id = Field(Integer, primary_key=True)
        hen_id = Field(Integer, references="qs_hens.id")

    class Hen(chakra.Model):
        __tablename__ = "qs_hens"
        id = Field(Integer, primary_key=True)
        egg_id = Field(Integer, references=Egg)

    try:
        Egg._meta.fields["hen_id"].references = Hen
        with pytest.raises(chakra.ConfigError, match="cycle .*Egg -> Hen -> Egg"):
            chakra.create_all_sync([Egg, Hen])
    finally:
        # Out of the declared models, so a create_all() of them all is not refused.
        for model in (Egg, Hen):
            chakra.models._REGISTRY.remove(model)


async def test_values_stream_as_they_arrive() -> None:
    await Author.objects.bulk_create(Author(name=f"v{i}", age=i) for i in range(1200))
    many = Author.objects.filter(name__startswith="v").order_by("age")
    assert [row["age"] async for row in many.values("age")] == list(range(1200))
    assert [age async for age in many.values_list("age", flat=True).aiterator(chunk_size=100)] == list(range(1200))
    sizes = [len(b) async for b in many.values_list("name", "age").stream(batch_size=500)]
    assert sizes == [500, 500, 200]
    named = [row.age for row in many.values_list("age", named=True).iterator(chunk_size=7)]
    assert named == list(range(1200))
    groups = Author.objects.filter(name__startswith="v").values("is_active").annotate(n=Count("id"))
    assert [g async for g in groups] == await groups
    assert [len(b) for b in many.values_list("age").stream_sync(batch_size=1000)] == [1000, 200]


def test_a_queryset_has_no_truth_value_or_length_of_its_own() -> None:
    with pytest.raises(TypeError, match=re.escape("ask `await qs.exists()`")):
        bool(Author.objects.filter(name="nobody"))
    with pytest.raises(TypeError, match=re.escape("ask `await qs.count()`")):
        len(Author.objects.all())
    with pytest.raises(TypeError, match=re.escape("ask `await values.exists()`")):
        if Author.objects.values("name"):
            pass
    assert Author.objects.filter(name="nobody").exists_sync() is False
    with pytest.raises(TypeError, match=re.escape("read with `async for obj in qs`")):
        for _ in Author.objects.all():
            pass
    with pytest.raises(TypeError, match=re.escape("read with `async for row in values`")):
        list(Author.objects.values("name"))
