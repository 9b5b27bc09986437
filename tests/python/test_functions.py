"""Django's text, number and date functions beyond the basic ones (``chakra.functions``):
what each gives, of which type, in ``annotate()``, filters and updates, and the errors
for arguments they cannot take."""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import math
import re
import uuid

import pytest

from chakra import (
    UUID,
    Count,
    DateTime,
    F,
    Field,
    FieldError,
    Float,
    Integer,
    Model,
    Numeric,
    String,
    Value,
)
from chakra.functions import (
    MD5,
    Exp,
    Extract,
    ExtractDay,
    ExtractHour,
    ExtractIsoWeekDay,
    ExtractMonth,
    ExtractQuarter,
    ExtractWeekDay,
    ExtractYear,
    Left,
    Ln,
    LPad,
    Mod,
    Pi,
    Power,
    Random,
    RandomUUID,
    Repeat,
    Replace,
    Reverse,
    Right,
    Round,
    RPad,
    Sign,
    Sqrt,
    StrIndex,
    Substr,
    Upper,
)
from conftest import recreate


class Item(Model):
    __tablename__ = "fn_items"
    id = Field(Integer, primary_key=True)
    name = Field(String(30))
    qty = Field(Integer)
    weight = Field(Float)
    price = Field(Numeric(8, 3))
    sold = Field(DateTime(timezone=True))
    token = Field(UUID, nullable=True)


class Ticket(Model):
    __tablename__ = "fn_tickets"
    id = Field(UUID, primary_key=True, db_default=RandomUUID())
    title = Field(String(30))


def at(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.timezone.utc)


@pytest.fixture(autouse=True)
def items() -> None:
    recreate(Item, Ticket)
    Item.objects.bulk_create_sync(
        [
            # 2024-02-29 is a Thursday, in the first quarter.
            Item(name="red-apple", qty=12, weight=2.345, price=decimal.Decimal("10.125"), sold=at(2024, 2, 29, 23)),
            Item(name="Pear", qty=-7, weight=0.5, price=decimal.Decimal("3.5"), sold=at(2023, 12, 31, 8)),
        ]
    )


async def test_text_functions() -> None:
    rows = await Item.objects.order_by("id").values_list(
        Substr("name", 2, 3),
        Substr("name", 5),
        Left("name", 3),
        Right("name", 2),
        Replace("name", Value("-")),
        Replace("name", Value("e"), Value("E")),
        StrIndex("name", Value("a")),
        LPad("name", 10, Value(".")),
        RPad("name", 6),
        Repeat(Left("name", 1), 3),
        Reverse("name"),
        MD5("name"),
    )
    assert rows[0] == (
        "ed-",
        "apple",
        "red",
        "le",
        "redapple",
        "rEd-applE",
        5,
        ".red-apple",
        "red-ap",
        "rrr",
        "elppa-der",
        hashlib.md5(b"red-apple").hexdigest(),
    )
    assert rows[1][:11] == ("ear", "", "Pea", "ar", "Pear", "PEar", 3, "......Pear", "Pear  ", "PPP", "raeP")
    assert rows[1][11] == hashlib.md5(b"Pear").hexdigest()
    # Positions and lengths from fields, in filters and updates.
    assert await Item.objects.filter(name=Left("name", F("qty"))).count() == 1
    await Item.objects.filter(name="Pear").update(name=Upper(Substr("name", 1, 2)))
    assert await Item.objects.order_by("id").values_list("name", flat=True) == ["red-apple", "PE"]


async def test_number_functions_keep_the_types_django_gives() -> None:
    rows = await Item.objects.order_by("id").values_list(
        Round("weight", 2),
        Round("price", 1),
        Round("qty", -1),
        Sign("qty"),
        Mod("qty", 5),
        Mod("price", 2),
        Power("qty", 2),
        Sqrt("weight"),
        Sqrt("price"),
        Ln(Exp("weight")),
        Pi(),
    )
    first, second = rows
    assert first[:6] == (2.35, decimal.Decimal("10.1"), 10, 1.0, 2, decimal.Decimal("0.125"))
    assert second[:6] == (0.5, decimal.Decimal("3.5"), -10, -1.0, -2, decimal.Decimal("1.5"))
    assert first[6] == 144.0 and isinstance(first[6], float)
    assert first[7] == pytest.approx(math.sqrt(2.345)) and isinstance(first[8], decimal.Decimal)
    assert first[9] == pytest.approx(2.345) and first[10] == pytest.approx(math.pi)
    assert await Item.objects.filter(qty__gt=Power("qty", 2) / 100).values_list("name", flat=True) == ["red-apple"]


async def test_random_values_differ_per_row() -> None:
    await Item.objects.update(token=RandomUUID())
    tokens = await Item.objects.values_list("token", flat=True)
    assert all(isinstance(t, uuid.UUID) for t in tokens) and tokens[0] != tokens[1]
    shuffled = await Item.objects.annotate(r=Random()).order_by("r").values_list("r", flat=True)
    assert all(0 <= r < 1 for r in shuffled) and shuffled == sorted(shuffled)
    ticket = await Ticket.objects.create(title="first")
    assert isinstance(ticket.id, uuid.UUID)
    assert await Ticket.objects.get(id=ticket.id) is not None


async def test_extract_reads_parts_of_dates_wherever_f_goes() -> None:
    rows = await Item.objects.order_by("id").values_list(
        ExtractYear("sold"),
        ExtractQuarter("sold"),
        ExtractMonth("sold"),
        ExtractDay("sold"),
        ExtractWeekDay("sold"),
        ExtractIsoWeekDay("sold"),
        ExtractHour("sold"),
        Extract("sold", "iso_year"),
    )
    assert rows == [(2024, 1, 2, 29, 5, 4, 23, 2024), (2023, 4, 12, 31, 1, 7, 8, 2023)]
    assert await Item.objects.filter(qty__lt=ExtractMonth("sold")).values_list("name", flat=True) == ["Pear"]
    assert await Item.objects.filter(qty__gt=F("sold__month") + 5).values_list("name", flat=True) == ["red-apple"]
    per_year = await Item.objects.values(year=ExtractYear("sold")).annotate(n=Count("id")).order_by("-year")
    assert per_year == [{"year": 2024, "n": 1}, {"year": 2023, "n": 1}]
    await Item.objects.update(qty=ExtractDay("sold") * 10)
    assert await Item.objects.order_by("id").values_list("qty", flat=True) == [290, 310]


async def test_arguments_they_cannot_take_are_refused_naming_them() -> None:
    cases = [
        (Substr("qty", 1), 'Substr() takes text; it was given F("qty")'),
        (Left("name", Value("x")), "Left() takes an integer as argument 2; it was given 'x'"),
        (Left("name", "weight"), 'Left() takes an integer as argument 2; it was given F("weight")'),
        (Mod("weight", 2), 'Mod() takes integers or decimals (not floats); it was given F("weight")'),
        (Sqrt("name"), 'Sqrt() takes numbers; it was given F("name")'),
        (ExtractHour("price"), "`price` is a `numeric` column, which has no hour"),
        (F("sold__fortnight"), "unknown field `sold__fortnight`"),
    ]
    for expression, message in cases:
        with pytest.raises(FieldError, match=re.escape(message)):
            await Item.objects.annotate(v=expression).values_list("v")
    with pytest.raises(FieldError, match=re.escape("Upper() gives text; it cannot stand for Item.qty")):
        await Item.objects.update(qty=Upper(Substr("name", 1, 2)))
    with pytest.raises(ValueError, match="Extract part 'fortnight' is not one of year, iso_year"):
        Extract("sold", "fortnight")
    with pytest.raises(TypeError, match=re.escape("takes from 3 to 4 positional arguments but 5 were given")):
        Substr("name", 1, 2, 3)  # type: ignore[call-arg]


async def test_operators_and_random_order() -> None:
    rows = await Item.objects.order_by("id").values_list(F("qty") % 5, 17 % F("qty"), F("qty") ** 2, 2 ** F("qty"))
    assert rows == [(2, 5, 144.0, 4096.0), (-2, 3, 49.0, 2**-7)]
    with pytest.raises(FieldError, match=re.escape("Mod() takes integers or decimals (not floats)")):
        await Item.objects.values_list(F("weight") % 2)
    shuffled = await Item.objects.order_by("?").values_list("name", flat=True)
    assert sorted(shuffled) == ["Pear", "red-apple"]
    assert "ORDER BY random()" in Item.objects.order_by("?").sql()[0]


async def test_raw_sql_goes_where_an_expression_goes() -> None:
    from chakra import Float, RawSQL

    rows = await Item.objects.order_by("id").values_list(
        RawSQL("upper(name) || %s", ["!"]), RawSQL("qty * 2 + %s", [1], Integer), RawSQL("'100%%'")
    )
    assert rows == [("RED-APPLE!", 25, "100%"), ("PEAR!", -13, "100%")]
    near = await Item.objects.filter(weight__gt=RawSQL("%s::float8 / 2", [1.5], Float)).values_list("name", flat=True)
    assert near == ["red-apple"]
    await Item.objects.filter(name="Pear").update(qty=RawSQL("length(name) * %s", [10], Integer))
    assert await Item.objects.filter(name="Pear").values_list("qty", flat=True) == [40]
    with pytest.raises(FieldError, match=re.escape("RawSQL(\"a %s %s\") has a different number of %s than its 1 params")):
        await Item.objects.values_list(RawSQL("a %s %s", [1]))
    with pytest.raises(FieldError, match=re.escape("RawSQL() gives text; it cannot stand for Item.qty")):
        await Item.objects.update(qty=RawSQL("'x'", [], String(5)))
    with pytest.raises(TypeError, match="takes its params as a list or tuple"):
        RawSQL("x = %s", 5)
