"""Expressions the database computes from a row: ``Value``, the functions of
``chakra.functions`` (``Coalesce``, ``Lower``, …) and ``Case``/``When``, wherever ``F``
goes — ``annotate()``, ``values()``, ``update()``, the right side of a filter — and the
errors for what cannot work."""

from __future__ import annotations

import datetime as dt
import decimal
import re

import pytest

import chakra
from chakra import (
    Avg,
    BigInteger,
    Case,
    Count,
    DateTime,
    Exists,
    F,
    Field,
    Integer,
    Max,
    Model,
    Numeric,
    OuterRef,
    Q,
    Session,
    String,
    Subquery,
    Text,
    Sum,
    Value,
    When,
    Window,
)
from chakra.functions import (
    Abs,
    Cast,
    Ceil,
    Coalesce,
    Concat,
    DenseRank,
    FirstValue,
    Floor,
    Greatest,
    Lag,
    Lead,
    Least,
    Length,
    Lower,
    LTrim,
    Now,
    Ntile,
    NullIf,
    Rank,
    Round,
    RowNumber,
    RTrim,
    Trim,
    Upper,
)
from conftest import recreate


class Shop(Model):
    __tablename__ = "ex_shops"
    id = Field(Integer, primary_key=True)
    name = Field(String(30))


class Customer(Model):
    __tablename__ = "ex_customers"
    id = Field(Integer, primary_key=True)
    name = Field(String(30))
    nick = Field(String(30), nullable=True)
    spent = Field(Integer, column="total_spent")
    credit = Field(Numeric(8, 2), nullable=True)
    visits = Field(BigInteger, default=0)
    shop_id = Field(Integer, nullable=True, references=Shop, related_name="customers")


@pytest.fixture(autouse=True)
def customers() -> None:
    recreate(Shop, Customer)
    north, _ = Shop.objects.bulk_create_sync([Shop(name="North"), Shop(name="South")])
    Customer.objects.bulk_create_sync(
        [
            Customer(name="Ann", nick=None, spent=1500, credit=decimal.Decimal("-2.50"), visits=3, shop=north),
            Customer(name="bob", nick="Bobby", spent=120, credit=None, visits=10),
            Customer(name="  Cy ", nick="cy", spent=5, credit=decimal.Decimal("7.25"), visits=1, shop=north),
        ]
    )


TIER = Case(
    When(spent__gte=1000, then=Value("gold")),
    When(Q(spent__gte=100) | Q(nick="cy"), then=Value("silver")),
    default=Value("bronze"),
)


async def test_functions_and_cases_annotate_each_row() -> None:
    rows = await Customer.objects.annotate(
        shown=Coalesce("nick", "name"),
        tier=TIER,
        letters=Length("name"),
        loud=Upper(Trim("name")),
        label=Concat("name", Value("/"), "nick", Value("/"), "spent"),
        floor=Greatest("spent", 100),
        cap=Least("spent", Value(1000)),
        debt=Abs("credit"),
        half=F("spent") / 2.5,
    ).order_by("id")
    assert [(c.shown, c.tier, c.letters, c.loud) for c in rows] == [
        ("Ann", "gold", 3, "ANN"),
        ("Bobby", "silver", 3, "BOB"),
        ("cy", "silver", 5, "CY"),
    ]
    # Concat reads NULL as empty text, as Django's.
    assert [c.label for c in rows] == ["Ann//1500", "bob/Bobby/120", "  Cy /cy/5"]
    assert [(c.floor, c.cap) for c in rows] == [(1500, 1000), (120, 120), (100, 5)]
    assert [c.debt for c in rows] == [decimal.Decimal("2.50"), None, decimal.Decimal("7.25")]
    # An integer field divided by a float is a float division, not an integer one.
    assert [c.half for c in rows] == [600.0, 48.0, 2.0]


async def test_annotations_filter_order_and_read_by_name() -> None:
    gold = await Customer.objects.annotate(tier=TIER).filter(tier="gold").values_list("name", flat=True)
    assert gold == ["Ann"]
    ordered = await Customer.objects.annotate(key=Lower(Trim("name"))).order_by("-key").values_list("key", flat=True)
    assert ordered == ["cy", "bob", "ann"]
    rows = await Customer.objects.order_by("id").values("name", tier=TIER, shown=Coalesce("nick", Value("?")))
    assert rows == [
        {"name": "Ann", "tier": "gold", "shown": "?"},
        {"name": "bob", "tier": "silver", "shown": "Bobby"},
        {"name": "  Cy ", "tier": "silver", "shown": "cy"},
    ]
    # Grouped by a computed value, as Django's values(...).annotate(...).
    counts = await Customer.objects.values(tier=TIER).annotate(n=Count("id")).order_by("tier")
    assert counts == [{"tier": "gold", "n": 1}, {"tier": "silver", "n": 2}]


async def test_a_case_without_default_is_null_and_then_names_a_field() -> None:
    rows = await Customer.objects.annotate(
        rich=Case(When(spent__gte=1000, then=Value(True))),
        called=Case(When(nick__isnull=True, then="name"), default="nick"),
    ).order_by("id")
    assert [(c.rich, c.called) for c in rows] == [(True, "Ann"), (None, "Bobby"), (None, "cy")]


async def test_when_reaches_across_relations() -> None:
    rows = await Customer.objects.annotate(
        where=Case(When(shop__name="North", then=Value("north")), default=Value("elsewhere"))
    ).order_by("id")
    assert [c.where for c in rows] == ["north", "elsewhere", "north"]


async def test_rounding_and_nullif() -> None:
    rows = await Customer.objects.annotate(
        r=Round("credit"), up=Ceil("credit"), down=Floor("credit"), none_if_cy=NullIf("nick", Value("cy"))
    ).order_by("id")
    assert [(c.r, c.up, c.down) for c in rows] == [
        (decimal.Decimal("-3"), decimal.Decimal("-2"), decimal.Decimal("-3")),
        (None, None, None),
        (decimal.Decimal("7"), decimal.Decimal("8"), decimal.Decimal("7")),
    ]
    assert [c.none_if_cy for c in rows] == [None, "Bobby", None]


async def test_update_computes_from_each_row() -> None:
    assert await Customer.objects.filter(nick__isnull=True).update(nick=Lower(Trim("name"))) == 1
    assert await Customer.objects.update(name=RTrim(LTrim("name"))) == 3
    await Customer.objects.update(
        spent=Case(When(spent__lt=100, then=F("spent") * 2), default=Coalesce("spent", 0) + 1),
        credit=Coalesce("credit", decimal.Decimal("0")),
    )
    rows = await Customer.objects.order_by("id").values_list("name", "nick", "spent", "credit")
    assert rows == [
        ("Ann", "ann", 1501, decimal.Decimal("-2.50")),
        ("bob", "Bobby", 121, decimal.Decimal("0.00")),
        ("Cy", "cy", 10, decimal.Decimal("7.25")),
    ]


def test_update_sync_in_a_session() -> None:
    with Session():
        Customer.objects.update_sync(nick=Upper(Coalesce("nick", "name")))
    assert Customer.objects.order_by("id").values_list_sync("nick", flat=True) == ["ANN", "BOBBY", "CY"]


async def test_filters_compare_with_expressions() -> None:
    assert await Customer.objects.filter(nick=Lower(Trim("name"))).values_list("id", flat=True) == [3]
    assert await Customer.objects.filter(spent__gt=Length("name") * 100).values_list("name", flat=True) == ["Ann"]
    # A fraction in arithmetic on an integer field widens it, as in Django.
    widened = Customer.objects.filter(spent__lt=F("visits") * 12.5).order_by("id")
    assert await widened.values_list("name", flat=True) == ["bob", "  Cy "]
    await Customer.objects.filter(name="bob").update(spent=F("spent") * 1.5)
    assert await Customer.objects.filter(name="bob").values_list("spent", flat=True) == [180]


async def test_what_cannot_work_is_refused_before_anything_is_sent() -> None:
    before = await Customer.objects.order_by("id").values_list("name", "spent")
    cases = [
        (lambda: Customer.objects.annotate(x=Lower("spent")), 'Lower() takes text; it was given F("spent")'),
        (lambda: Customer.objects.annotate(x=Abs("name")), 'Abs() takes numbers; it was given F("name")'),
        (
            lambda: Customer.objects.annotate(x=Coalesce("nick", "spent")),
            'Coalesce() takes values of one type (text and a number); it was given F("spent")',
        ),
        (
            lambda: Customer.objects.annotate(x=Case(When(spent=1, then="name"), default="spent")),
            "Case() gives values of one type; its branches give text and a number",
        ),
        (lambda: Customer.objects.annotate(x=Case(When(nope=1, then=1))), "unknown field `nope`"),
        (lambda: Customer.objects.annotate(x=Upper("nope")), "unknown field `nope`"),
    ]
    for make, message in cases:
        with pytest.raises(chakra.FieldError, match=re.escape(message)):
            make()
    with pytest.raises(chakra.FieldError, match=re.escape("Lower() gives text; it cannot stand for Customer.spent")):
        await Customer.objects.update(spent=Lower("name"))
    with pytest.raises(chakra.FieldError, match=re.escape("Case() gives text; it cannot stand for Customer.spent")):
        await Customer.objects.update(name=Value("x"), spent=Case(When(spent=5, then=Value("five"))))
    with pytest.raises(chakra.FieldError, match=re.escape("its branches give text and a number")):
        await Customer.objects.update(name=Value("x"), spent=Case(When(spent=5, then="nick"), default=0))
    # A value that does not fit is converted as the field's values are, and refused so.
    with pytest.raises(chakra.DataError, match=re.escape("Customer.spent")):
        await Customer.objects.update(name=Value("x"), spent=Case(When(spent=5, then=Value(2**40)), default=0))
    with pytest.raises(chakra.FieldError, match=re.escape("Length() gives a number; it cannot stand for Customer.name")):
        await Customer.objects.filter(name=Length("nick")).all()
    assert await Customer.objects.order_by("id").values_list("name", "spent") == before


async def test_order_by_expressions_and_where_nulls_go() -> None:
    names = lambda qs: qs.values_list("name", flat=True)  # noqa: E731
    assert await names(Customer.objects.order_by(Lower(Trim("name")).desc())) == ["  Cy ", "bob", "Ann"]
    assert await names(Customer.objects.order_by(F("credit").desc(nulls_last=True))) == ["  Cy ", "Ann", "bob"]
    assert await names(Customer.objects.order_by(F("credit").asc(nulls_first=True))) == ["bob", "Ann", "  Cy "]
    # reverse() puts the NULLs at the other end too.
    reversed_ = Customer.objects.order_by(F("credit").desc(nulls_last=True)).reverse()
    assert await names(reversed_) == ["bob", "Ann", "  Cy "]
    # An annotation, a field across a relation and a plain field by F, with NULLs placed.
    by_tier = Customer.objects.annotate(tier=TIER).order_by(F("tier").desc(), "id")
    assert await names(by_tier) == ["bob", "  Cy ", "Ann"]
    by_shop = Customer.objects.order_by(F("shop__name").asc(nulls_first=True), "-id")
    assert await names(by_shop) == ["bob", "  Cy ", "Ann"]
    assert await names(Customer.objects.order_by(Coalesce("credit", decimal.Decimal("0")))) == ["Ann", "bob", "  Cy "]
    by_length = Customer.objects.values_list("name", flat=True).order_by(Length("name").desc(), "id")
    assert await by_length == ["  Cy ", "Ann", "bob"]
    with pytest.raises(TypeError, match="grouped values are ordered by the names"):
        Customer.objects.values("nick").annotate(n=Count("id")).order_by(Length("nick"))
    with pytest.raises(ValueError, match="nulls_first and nulls_last cannot both be true"):
        F("credit").asc(nulls_first=True, nulls_last=True)
    with pytest.raises(chakra.FieldError, match="unknown field `nope`"):
        Customer.objects.order_by(Lower("nope"))
    with pytest.raises(TypeError, match="order_by\\(\\) takes field names and expressions, not 3"):
        Customer.objects.order_by(3)  # type: ignore[arg-type]


async def test_aggregates_of_values_computed_from_each_row() -> None:
    totals = await Customer.objects.aggregate(
        owed=Sum(F("credit") * F("visits")),
        per_visit=Avg(F("spent") / F("visits")),
        big=Sum(Case(When(spent__gte=100, then=1), default=0)),
        longest=Max(Length(Trim("name"))),
        visits=Sum("visits"),
    )
    assert totals == {
        "owed": decimal.Decimal("-0.25"),  # -2.50 * 3 + 7.25 * 1; NULL credit is skipped
        "per_visit": (500 + 12 + 5) / 3,  # integer division per row, then the mean as a float
        "big": 2,  # a sum of integers is an int, as Django's (PostgreSQL's would be a numeric)
        "longest": 3,
        "visits": 14,  # of a BigInteger field too
    }
    assert all(type(totals[k]) is int for k in ("big", "longest", "visits"))
    per_shop = await Customer.objects.values("shop").annotate(
        twice=Sum(F("spent") * 2), rich=Count("id", filter=Q(spent__gte=1000)), n=Count("shop__customers")
    )
    assert sorted(per_shop, key=lambda r: r["shop"] or 0) == [
        {"shop": None, "twice": 240, "rich": 0, "n": 0},
        # Joined to the shop's customers, each row counts once per customer it reaches, as
        # Django's joins count it: Ann's 3000 and Cy's 10 twice each, Ann twice among the rich.
        {"shop": 1, "twice": 6020, "rich": 2, "n": 4},
    ]
    # Per row too, over a relation's rows: a sum of a BigInteger field is an int.
    visits = await Shop.objects.annotate(v=Sum("customers__visits")).order_by("id").values_list("v", flat=True)
    assert visits == [4, None] and type(visits[0]) is int
    filtered = await Customer.objects.aggregate(s=Sum(F("spent") + 1, filter=Q(nick__isnull=False)))
    assert filtered == {"s": 127}
    assert await Customer.objects.order_by("id")[:2].aggregate(s=Sum(F("visits") * 10)) == {"s": 130}
    with pytest.raises(TypeError, match=re.escape("Sum((F('spent') * 2)) needs a name")):
        await Customer.objects.aggregate(Sum(F("spent") * 2))
    with pytest.raises(chakra.FieldError, match=re.escape("`s`: sum needs a numeric field; Upper(…) is not one")):
        await Customer.objects.aggregate(s=Sum(Upper("name")))
    with pytest.raises(chakra.FieldError, match=re.escape("goes in aggregate() or values(...).annotate()")):
        Customer.objects.annotate(s=Sum(F("spent") * 2))


def test_constructors_check_their_arguments() -> None:
    with pytest.raises(TypeError, match=re.escape("Lower() takes 1 expression, got 2")):
        Lower("a", "b")
    with pytest.raises(TypeError, match=re.escape("Coalesce() takes at least two expressions, got 1")):
        Coalesce("a")
    with pytest.raises(TypeError, match=re.escape("NullIf() takes 2 expressions, got 3")):
        NullIf("a", "b", "c")
    with pytest.raises(TypeError, match=re.escape("Case() needs at least one When()")):
        Case()
    with pytest.raises(TypeError, match=re.escape("Case() takes When() branches")):
        Case(Value(1))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=re.escape("When() needs a condition")):
        When(then=1)
    assert repr(Coalesce("nick", Value("?")) + 1) == "(Coalesce(F('nick'), '?') + 1)"
    assert repr(Case(When(spent=1, then="name"))) == "Case(When(Q(spent=1), then=F('name')))"


class Node(Model):
    __tablename__ = "ex_nodes"
    id = Field(Integer, primary_key=True)
    name = Field(String(20))
    parent_id = Field(Integer, nullable=True, references="self", related_name="children")


async def test_exists_and_subquery_ask_about_each_row() -> None:
    north, south = await Shop.objects.order_by("id")
    big = Customer.objects.filter(shop=OuterRef("pk"), spent__gte=1000)
    assert await Shop.objects.filter(Exists(big)).values_list("name", flat=True) == ["North"]
    assert await Shop.objects.filter(~Exists(big)).values_list("name", flat=True) == ["South"]
    assert await Shop.objects.exclude(Exists(Customer.objects.filter(shop_id=OuterRef("id")))).count() == 1
    either = Shop.objects.filter(Q(Exists(big)) | Q(name="South")).order_by("id")
    assert await either.values_list("name", flat=True) == ["North", "South"]
    flagged = await Shop.objects.annotate(has_big=Exists(big)).order_by("id").values_list("name", "has_big")
    assert flagged == [("North", True), ("South", False)]
    kind = Case(When(Exists(big), then=Value("busy")), default=Value("quiet"))
    assert await Shop.objects.annotate(kind=kind).order_by("id").values_list("kind", flat=True) == ["busy", "quiet"]
    # The first row of an ordered, sliced queryset, per row; None where it has none.
    top = Customer.objects.filter(shop=OuterRef("pk")).order_by("-spent")
    best = Shop.objects.annotate(best=Subquery(top.values("name")[:1])).order_by("id")
    assert await best.values_list("name", "best") == [("North", "Ann"), ("South", None)]
    assert await best.filter(best="Ann").values_list("name", flat=True) == ["North"]
    # A subquery is a value like any other: in functions, compared with, assigned.
    named = Shop.objects.annotate(best=Coalesce(Subquery(top.values("name")[:1]), Value("nobody"))).order_by("id")
    assert await named.values_list("best", flat=True) == ["Ann", "nobody"]
    richest = Customer.objects.filter(shop=OuterRef("shop")).order_by("-spent").values("spent")[:1]
    assert await Customer.objects.filter(spent=Subquery(richest)).values_list("name", flat=True) == ["Ann"]
    with pytest.raises(chakra.FieldError, match=re.escape("Subquery() gives a number; it cannot stand for Shop.name")):
        Shop.objects.filter(name=Subquery(Customer.objects.filter(shop=OuterRef("pk")).values("spent")[:1]))
    with pytest.raises(chakra.FieldError, match=re.escape("Exists() gives a bool; it cannot stand for Shop.name")):
        await Shop.objects.update(name=Exists(big))
    # Updates and deletes pick their rows by it too, and assign it.
    await Shop.objects.filter(Exists(big)).update(name=Subquery(top.values("name")[:1]))
    assert await Shop.objects.filter(id=north.id).values_list("name", flat=True) == ["Ann"]
    assert await Shop.objects.filter(~Exists(big)).update(name="Quiet") == 1
    assert await Shop.objects.filter(id=south.id).values_list("name", flat=True) == ["Quiet"]
    assert north.id is not None


def test_exists_over_the_same_table_reaches_the_outer_row() -> None:
    recreate(Node)
    root, a, b = Node.objects.bulk_create_sync([Node(name="root"), Node(name="a"), Node(name="b")])
    Node.objects.filter(id__in=[a.id, b.id]).update_sync(parent_id=root.id)
    children = Node.objects.filter(parent_id=OuterRef("pk"))
    leaves = Node.objects.filter(~Exists(children)).order_by("id")
    assert leaves.values_list_sync("name", flat=True) == ["a", "b"]
    parents = Node.objects.annotate(parent_name=Subquery(Node.objects.filter(id=OuterRef("parent_id")).values("name")[:1]))
    assert parents.order_by("id").values_list_sync("name", "parent_name") == [("root", None), ("a", "root"), ("b", "root")]
    with Session():
        assert Node.objects.filter(Exists(children)).values_list_sync("name", flat=True) == ["root"]


async def test_outer_references_are_checked() -> None:
    big = Customer.objects.filter(shop=OuterRef("pk"), spent__gte=1000)
    with pytest.raises(chakra.ProgrammingError, match=re.escape("names an outer query's row (OuterRef)")):
        await big.count()
    with pytest.raises(chakra.ProgrammingError, match=re.escape("names an outer query's row (OuterRef)")):
        big.values_list_sync("id", flat=True)
    with pytest.raises(chakra.FieldError, match=re.escape('OuterRef("nope"): unknown field `nope` on `ex_shops`')):
        Shop.objects.filter(Exists(Customer.objects.filter(shop_id=OuterRef("nope"))))
    with pytest.raises(TypeError, match=re.escape("Exists() takes a queryset, not [1]")):
        Exists([1])
    with pytest.raises(TypeError, match=re.escape("OuterRef() takes a field name")):
        OuterRef(1)  # type: ignore[arg-type]
    assert repr(~Exists(big)).startswith("~Exists(<QuerySet Customer: ")


class Employee(Model):
    __tablename__ = "ex_employees"
    id = Field(Integer, primary_key=True)
    name = Field(String(10))
    dept = Field(String(10))
    salary = Field(Integer)


async def test_window_functions_compute_over_each_rows_partition() -> None:
    recreate(Employee)
    staff = [("a", "x", 10), ("b", "x", 30), ("c", "x", 20), ("d", "y", 5), ("e", "y", 5), ("f", "y", 7)]
    await Employee.objects.bulk_create([Employee(name=n, dept=d, salary=s) for n, d, s in staff])
    rows = await Employee.objects.annotate(
        rank=Window(Rank(), partition_by="dept", order_by=F("salary").desc()),
        dense=Window(DenseRank(), partition_by="dept", order_by="salary"),
        number=Window(RowNumber(), order_by="id"),
        running=Window(Sum("salary"), partition_by=[F("dept")], order_by="id"),
        before=Window(Lag("salary", 1, 0), partition_by="dept", order_by="id"),
        after=Window(Lead("name"), partition_by="dept", order_by="id"),
        size=Window(Count("*"), partition_by="dept"),
        half=Window(Ntile(2), order_by="id"),
        top=Window(FirstValue("name"), partition_by="dept", order_by=F("salary").desc()),
    ).order_by("id")
    assert [(e.name, e.rank, e.dense, e.number) for e in rows] == [
        ("a", 3, 1, 1),
        ("b", 1, 3, 2),
        ("c", 2, 2, 3),
        ("d", 2, 1, 4),
        ("e", 2, 1, 5),
        ("f", 1, 2, 6),
    ]
    assert [(e.running, e.before, e.after, e.size, e.half, e.top) for e in rows] == [
        (10, 0, "b", 3, 1, "b"),
        (40, 10, "c", 3, 1, "b"),
        (60, 30, None, 3, 1, "b"),
        (5, 0, "e", 3, 2, "f"),
        (10, 5, "f", 3, 2, "f"),
        (17, 5, None, 3, 2, "f"),
    ]
    # The top earner of each department: filtered by the window's name, over the rows
    # it was computed over (a derived table), as Django 4.2 does.
    best = Employee.objects.annotate(r=Window(DenseRank(), partition_by="dept", order_by=F("salary").desc()))
    assert await best.filter(r=1).order_by("id").values_list("name", flat=True) == ["b", "f"]
    numbered = Employee.objects.values("name", n=Window(RowNumber(), order_by="-salary")).order_by("n")[:2]
    assert await numbered == [{"name": "b", "n": 1}, {"name": "c", "n": 2}]
    with pytest.raises(chakra.FieldError, match=re.escape("Rank() is a window function: use it in Window(Rank(), ...)")):
        Employee.objects.annotate(r=Rank())
    with pytest.raises(chakra.FieldError, match=re.escape("a Window is read with annotate()")):
        Employee.objects.filter(salary=Window(Rank()))
    with pytest.raises(chakra.FieldError, match=re.escape("Upper() is not a window function")):
        Employee.objects.annotate(u=Window(Upper("name")))
    with pytest.raises(TypeError, match=re.escape("Lag() takes 1 to 3 expressions, got 0")):
        Lag()
    with pytest.raises(TypeError, match=re.escape("Window() takes an aggregate without distinct or filter")):
        Window(Count("id", distinct=True))
    with pytest.raises(TypeError, match=re.escape("a Window's order_by takes field names and expressions, not 3")):
        Window(RowNumber(), order_by=3)


class Visit(Model):
    __tablename__ = "ex_visits"
    id = Field(Integer, primary_key=True)
    at = Field(DateTime(timezone=True))
    seen = Field(DateTime, nullable=True)


async def test_now_is_the_databases_clock() -> None:
    recreate(Visit)
    past, future = dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc), dt.datetime(2999, 1, 1, tzinfo=dt.timezone.utc)
    await Visit.objects.bulk_create([Visit(at=past), Visit(at=future)])
    assert await Visit.objects.filter(at__lt=Now()).values_list("id", flat=True) == [1]
    # A timestamp without a zone takes it too, converted in the connection's zone.
    assert await Visit.objects.update(seen=Now()) == 2
    now = await Visit.objects.annotate(now=Now()).values_list("now", flat=True)
    assert past < now[0] < future and now[0].tzinfo is not None
    assert await Visit.objects.filter(seen__isnull=True).count() == 0
    with pytest.raises(chakra.FieldError, match=re.escape("Now() gives a timestamp; it cannot stand for Visit.id")):
        Visit.objects.filter(id=Now())
    with pytest.raises(TypeError, match=re.escape("Now() takes 0 expressions, got 1")):
        Now("at")


async def test_cast_converts_to_a_column_type() -> None:
    rows = await Customer.objects.annotate(
        text=Cast("spent", String(10)),
        whole=Cast("credit", Integer),
        exact=Cast(F("spent") / 3, Numeric(10, 2)),
    ).order_by("id")
    # PostgreSQL rounds a decimal cast to an integer (-2.50 to -3); an integer division
    # stays one (5 / 3 is 1).
    assert [(c.text, c.whole, c.exact) for c in rows] == [
        ("1500", -3, decimal.Decimal("500.00")),
        ("120", None, decimal.Decimal("40.00")),
        ("5", 7, decimal.Decimal("1.00")),
    ]
    # Compared with and assigned as the type it gives.
    assert await Customer.objects.filter(name=Cast("spent", Text)).count() == 0
    assert await Customer.objects.filter(nick="Bobby").update(nick=Cast("spent", String(10))) == 1
    assert await Customer.objects.filter(nick="120").count() == 1
    with pytest.raises(chakra.FieldError, match=re.escape("Cast() gives text; it cannot stand for Customer.spent")):
        await Customer.objects.update(spent=Cast("name", Text))
    with pytest.raises(TypeError, match=re.escape("Cast() takes a column type such as Integer")):
        Cast("spent", "int4")  # type: ignore[arg-type]
    assert repr(Cast("spent", Integer)) == "Cast(F('spent'), integer)"
