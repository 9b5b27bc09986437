"""Every field type round-trips through the database, NULL included, and rejects values
of the wrong type naming the field."""

from __future__ import annotations

import datetime as dt
import decimal
import re
import uuid
from typing import Any

import pytest

import chakra
from chakra import (
    JSON,
    UUID,
    BigInteger,
    Boolean,
    Bytes,
    Count,
    Date,
    DateTime,
    Field,
    Float,
    Integer,
    Numeric,
    SmallInteger,
    String,
    Text,
    Time,
)
from conftest import DATABASE_URL, recreate


class Everything(chakra.Model):
    __tablename__ = "types_everything"
    id = Field(BigInteger, primary_key=True)
    small = Field(SmallInteger, nullable=True)
    integer = Field(Integer, nullable=True)
    big = Field(BigInteger, nullable=True)
    string = Field(String(20), nullable=True)
    text = Field(Text, nullable=True)
    flag = Field(Boolean, nullable=True)
    real = Field(Float, nullable=True)
    money = Field(Numeric(12, 3), nullable=True)
    exact = Field(Numeric, nullable=True)
    naive = Field(DateTime, nullable=True)
    aware = Field(DateTime(timezone=True), nullable=True)
    day = Field(Date, nullable=True)
    clock = Field(Time, nullable=True)
    ident = Field(UUID, nullable=True)
    doc = Field(JSON, nullable=True)
    blob = Field(Bytes, nullable=True)


class Keyed(chakra.Model):
    __tablename__ = "types_keyed"
    key = Field(UUID, primary_key=True, default=uuid.uuid4)
    label = Field(String(10))


@pytest.fixture(autouse=True)
def tables() -> None:
    recreate(Everything, Keyed)


SAMPLE: dict[str, Any] = {
    "small": -32768,
    "integer": 2**31 - 1,
    "big": -(2**63),
    "string": "naïve ☕ text",
    "text": "x" * 10_000,
    "flag": False,
    "real": 3.141592653589793,
    "money": decimal.Decimal("123456789.125"),
    "exact": decimal.Decimal("0.0000000000000000000000000001"),
    "naive": dt.datetime(1999, 12, 31, 23, 59, 59, 999999),
    "aware": dt.datetime(2024, 3, 10, 2, 30, tzinfo=dt.timezone(dt.timedelta(hours=-5))),
    "day": dt.date(1, 1, 1),
    "clock": dt.time(12, 0, 0, 1),
    "ident": uuid.UUID("00000000-0000-0000-0000-000000000001"),
    "doc": {"list": [1, 2.5, "three", None, True], "nested": {"k": "v"}, "big": 2**53},
    "blob": bytes(range(256)),
}


async def test_every_type_round_trips() -> None:
    made = await Everything.objects.create(**SAMPLE)
    loaded = await Everything.objects.get(id=made.id)
    for name, value in SAMPLE.items():
        got = getattr(loaded, name)
        if name == "aware":
            assert got == value and got.tzinfo == dt.timezone.utc
        else:
            assert got == value, name
            assert type(got) is type(value), name
    # What `create` read back is what is stored.
    assert made.to_dict() == loaded.to_dict()


async def test_nulls_round_trip() -> None:
    made = await Everything.objects.create()
    loaded = await Everything.objects.get(id=made.id)
    assert all(getattr(loaded, name) is None for name in SAMPLE)


async def test_bulk_insert_of_every_type_with_nulls() -> None:
    rows = [Everything(**SAMPLE), Everything(), Everything(**{**SAMPLE, "doc": [1, 2]})]
    await Everything.objects.bulk_create(rows)
    loaded = await Everything.objects.order_by("id")
    assert [r.doc for r in loaded] == [SAMPLE["doc"], None, [1, 2]]
    assert loaded[0].blob == SAMPLE["blob"] and loaded[1].blob is None


async def test_filters_convert_by_field_type() -> None:
    await Everything.objects.create(**SAMPLE)
    await Everything.objects.create(integer=5, day=dt.date(2020, 1, 1))
    assert await Everything.objects.filter(aware__gte=dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)).count() == 1
    assert await Everything.objects.filter(naive__lt=dt.datetime(2000, 1, 1)).count() == 1
    assert await Everything.objects.filter(day__range=(dt.date(2019, 1, 1), dt.date(2021, 1, 1))).count() == 1
    assert await Everything.objects.filter(ident=str(SAMPLE["ident"])).count() == 1
    assert await Everything.objects.filter(money__gt=decimal.Decimal("1.5")).count() == 1
    assert await Everything.objects.filter(money__gt=1).count() == 1
    assert await Everything.objects.filter(real__lt=4).count() == 1
    assert await Everything.objects.filter(integer__in=[5, 6]).count() == 1
    assert await Everything.objects.filter(blob=SAMPLE["blob"]).count() == 1


async def test_parts_of_dates_and_times_filter_as_djangos_transforms() -> None:
    utc = dt.timezone.utc
    # A Thursday at the end of a leap year's February, and a Monday in the next March.
    # A timestamp with time zone's parts are the connection's zone's: noon UTC is the
    # same date anywhere within 11 hours of it.
    rows = [
        Everything(aware=dt.datetime(2024, 2, 29, 12, 0, 58, 900_000, tzinfo=utc), day=dt.date(2024, 2, 29)),
        Everything(naive=dt.datetime(2025, 3, 3, 8, 5), day=dt.date(2025, 3, 3), clock=dt.time(8, 5, 59)),
    ]
    first, second = await Everything.objects.bulk_create(rows)

    async def ids(**lookups: Any) -> list[int]:
        return await Everything.objects.filter(**lookups).order_by("id").values_list("id", flat=True)

    assert await ids(day__year=2024) == [first.id]
    assert await ids(day__year__gte=2024) == [first.id, second.id]
    assert await ids(day__month=3, day__day=3) == [second.id]
    assert await ids(day__week_day=5) == [first.id]  # Thursday: Django counts from Sunday = 1
    assert await ids(day__iso_week_day=1) == [second.id]  # Monday
    assert await ids(day__quarter=1) == [first.id, second.id]
    assert await ids(day__week=9, day__iso_year=2024) == [first.id]
    assert await ids(day__year__in=[2023, 2025]) == [second.id]
    assert await ids(day__month__range=(2, 2)) == [first.id]
    assert await ids(aware__date=dt.date(2024, 2, 29), aware__second=58) == [first.id]  # 58.9: whole seconds
    assert await ids(naive__time__gt=dt.time(8, 0), naive__date__lt=dt.date(2025, 3, 4)) == [second.id]
    assert await ids(naive__hour=8, naive__minute=5) == [second.id]
    assert await ids(clock__second=59) == [second.id]
    assert await Everything.objects.exclude(day__year=2024).count() == 1
    # Parts of another row's own: an update by them.
    assert await Everything.objects.filter(day__year=2025).update(integer=1) == 1


async def test_parts_of_dates_are_read_sorted_and_grouped_by() -> None:
    days = [dt.date(2024, 1, 31), dt.date(2024, 3, 1), dt.date(2025, 1, 2), dt.date(2024, 3, 9)]
    stamps = [dt.datetime(2024, 1, 1, hour, 30) for hour in (9, 17, 9, 23)]
    await Everything.objects.bulk_create([Everything(day=d, naive=n) for d, n in zip(days, stamps)])
    by_id = Everything.objects.order_by("id")
    assert await by_id.values_list("day__year", "day__month", "naive__hour") == [
        (2024, 1, 9),
        (2024, 3, 17),
        (2025, 1, 9),
        (2024, 3, 23),
    ]
    assert await by_id.values_list("naive__date", flat=True) == [dt.date(2024, 1, 1)] * 4
    assert await by_id.values("naive__time")[:1] == [{"naive__time": dt.time(9, 30)}]
    # Sorted by a part, then a field (a window picks by the part).
    newest = Everything.objects.order_by("-day__year", "day__month", "-day")
    assert await newest.values_list("day", flat=True) == [days[2], days[0], days[3], days[1]]
    assert await newest[:1].values_list("day", flat=True) == [days[2]]
    # A row per month, counted: Django's values("day__month").annotate(n=Count("id")).
    per_month = Everything.objects.values("day__year", "day__month").annotate(n=Count("id"))
    assert await per_month.order_by("day__year", "day__month") == [
        {"day__year": 2024, "day__month": 1, "n": 1},
        {"day__year": 2024, "day__month": 3, "n": 2},
        {"day__year": 2025, "day__month": 1, "n": 1},
    ]
    assert await per_month.filter(n__gt=1) == [{"day__year": 2024, "day__month": 3, "n": 2}]
    busiest = Everything.objects.values_list("naive__hour").annotate(n=Count("*")).order_by("-n", "naive__hour")
    assert await busiest == [(9, 2), (17, 1), (23, 1)]
    with pytest.raises(chakra.FieldError, match="`day__hour`: `day` is a `date` column, which has no hour"):
        await Everything.objects.values("day__hour")
    with pytest.raises(chakra.FieldError, match="`day__hour`: `day` is a `date` column, which has no hour"):
        await Everything.objects.order_by("day__hour")
    with pytest.raises(chakra.FieldError, match="unknown field `day__yeer`"):
        await Everything.objects.values("day__yeer")


async def test_dates_and_timestamps_cut_down_to_a_unit_for_time_series() -> None:
    utc = dt.timezone.utc
    rows = [
        (dt.date(2024, 1, 31), dt.datetime(2024, 1, 31, 23, 59, tzinfo=utc)),
        (dt.date(2024, 3, 1), dt.datetime(2024, 3, 1, 0, 0, 1, tzinfo=utc)),
        (dt.date(2024, 3, 9), dt.datetime(2024, 3, 9, 12, 30, tzinfo=utc)),
        (dt.date(2025, 8, 20), dt.datetime(2025, 8, 20, 8, 0, tzinfo=utc)),
    ]
    await Everything.objects.bulk_create([Everything(day=d, aware=a, naive=a.replace(tzinfo=None)) for d, a in rows])
    # Django's time series: a row per month, counted, in order.
    per_month = Everything.objects.values(month=chakra.TruncMonth("day")).annotate(n=Count("id")).order_by("month")
    assert await per_month == [
        {"month": dt.date(2024, 1, 1), "n": 1},
        {"month": dt.date(2024, 3, 1), "n": 2},
        {"month": dt.date(2025, 8, 1), "n": 1},
    ]
    assert await per_month.filter(n__gte=2) == [{"month": dt.date(2024, 3, 1), "n": 2}]
    # Annotated first, then grouped by its name; a timestamp stays a timestamp, cut in
    # the connection's time zone.
    in_utc = chakra.Database(DATABASE_URL, time_zone="UTC")
    by_year = (
        Everything.objects.using(in_utc)
        .annotate(year=chakra.TruncYear("aware"))
        .values("year")
        .annotate(n=Count("*"))
        .order_by("-year")
    )
    assert await by_year == [
        {"year": dt.datetime(2025, 1, 1, tzinfo=utc), "n": 1},
        {"year": dt.datetime(2024, 1, 1, tzinfo=utc), "n": 3},
    ]
    # Read with each row, filtered and sorted by.
    weeks = Everything.objects.annotate(week=chakra.TruncWeek("day"), hour=chakra.Trunc("naive", "hour"))
    first = await weeks.filter(week=dt.date(2024, 1, 29)).get()
    assert (first.week, first.hour) == (dt.date(2024, 1, 29), dt.datetime(2024, 1, 31, 23, 0))  # the Monday
    assert [r.day for r in await weeks.order_by("-week")][:1] == [dt.date(2025, 8, 20)]
    dates = await Everything.objects.order_by("day").values(d=chakra.TruncDate("aware"), t=chakra.TruncTime("naive"))
    assert dates[0] == {"d": dt.date(2024, 1, 31), "t": dt.time(23, 59)}
    # What cannot be cut is refused before any SQL.
    no_hour = "`h`: cannot truncate `day`, a `date` column, to its hour (units: year, quarter, month, week, day)"
    with pytest.raises(chakra.FieldError, match=re.escape(no_hour)):
        Everything.objects.annotate(h=chakra.TruncHour("day"))
    with pytest.raises(chakra.FieldError, match="cannot truncate `text`, a `text` column, to its day"):
        Everything.objects.values(d=chakra.TruncDay("text"))


async def test_dates_and_datetimes_list_the_distinct_periods() -> None:
    utc = dt.timezone.utc
    stamps = [dt.datetime(2024, 1, 31, 23, 59, tzinfo=utc), dt.datetime(2024, 3, 1, tzinfo=utc)]
    stamps += [dt.datetime(2024, 3, 9, 12, 30, tzinfo=utc), dt.datetime(2025, 8, 20, 8, tzinfo=utc)]
    await Everything.objects.bulk_create([Everything(day=a.date(), aware=a, naive=a.replace(tzinfo=None)) for a in stamps])
    # Django's archive: the months that have rows, as dates, from a date or a timestamp.
    months = [dt.date(2024, 1, 1), dt.date(2024, 3, 1), dt.date(2025, 8, 1)]
    assert await Everything.objects.dates("day", "month") == months
    in_utc = chakra.Database(DATABASE_URL, time_zone="UTC")
    assert await Everything.objects.using(in_utc).dates("aware", "month", order="DESC") == months[::-1]
    assert await Everything.objects.filter(day__year=2024).dates("day", "year") == [dt.date(2024, 1, 1)]
    hours = await Everything.objects.using(in_utc).filter(day__year=2024).datetimes("aware", "day")
    assert hours == [dt.datetime(2024, 1, 31, tzinfo=utc), dt.datetime(2024, 3, 1, tzinfo=utc), dt.datetime(2024, 3, 9, tzinfo=utc)]
    with pytest.raises(ValueError, match="dates\\(\\) kind is 'year', 'month', 'week' or 'day', not 'hour'"):
        Everything.objects.dates("day", "hour")
    with pytest.raises(chakra.FieldError, match=re.escape("datetimes('day'): Everything.day is not a DateTime")):
        Everything.objects.datetimes("day", "day")
    with pytest.raises(ValueError, match="order is 'ASC' or 'DESC'"):
        Everything.objects.dates("day", "month", order="up")
    with pytest.raises(ValueError, match="Trunc kind 'fortnight' is not one of year, quarter"):
        chakra.Trunc("day", "fortnight")
    with pytest.raises(TypeError, match="annotate\\(\\) takes aggregates by position, and other expressions by name"):
        Everything.objects.annotate(chakra.TruncDay("day"))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("lookups", "message"),
    [
        ({"day__hour": 1}, "`day__hour`: `day` is a `date` column, which has no hour (parts: year, iso_year"),
        ({"text__year": 1}, "`text__year`: `text` is a `text` column, which has no year (parts: none"),
        ({"day__year": "2024"}, "`day__year__exact` needs an integer, got text (Everything.day)"),
        ({"aware__date__gt": 3}, "`aware__date__gt` needs a date, got i64"),
        ({"day__year__startswith": 2}, "`day__year__startswith`: a part of a date or time takes exact, ne, gt"),
        ({"day__yeer": 2}, "unknown lookup `yeer` on field `day` (lookups: exact"),
        ({"day__year": chakra.F("integer")}, "Everything.day__year__exact: a part of a date or time is compared with"),
    ],
)
def test_parts_that_cannot_work_are_field_errors_before_any_sql(lookups: dict[str, Any], message: str) -> None:
    with pytest.raises(chakra.FieldError) as raised:
        Everything.objects.filter(**lookups)
    assert str(raised.value).startswith(message), str(raised.value)


async def test_non_generated_keys_use_their_default() -> None:
    k = await Keyed.objects.create(label="a")
    assert isinstance(k.key, uuid.UUID)
    assert (await Keyed.objects.get(key=k.key)).label == "a"
    explicit = uuid.uuid4()
    await Keyed.objects.bulk_create([Keyed(key=explicit, label="b"), Keyed(label="c")])
    assert (await Keyed.objects.get(pk=explicit)).label == "b"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("small", 40000, "out of range"),
        ("integer", True, "expects an int, got bool"),
        ("integer", 1.5, "expects an int"),
        ("string", 5, "expects a str"),
        ("string", "x" * 21, "at most 20 characters"),
        ("flag", 1, "expects a bool"),
        ("real", "1.0", "expects a float"),
        ("money", "1.5", "expects a decimal"),
        ("naive", dt.date(2020, 1, 1), "naive datetime"),
        ("aware", dt.datetime(2020, 1, 1), "naive one"),
        ("day", dt.datetime(2020, 1, 1), "expects a datetime.date"),
        ("clock", "12:00", "expects a datetime.time"),
        ("ident", "not-a-uuid", "not a UUID"),
        ("doc", {1: "int key"}, "keys must be str"),
        ("doc", {1, 2}, "not JSON"),
        ("blob", "text", "expects bytes"),
        ("exact", decimal.Decimal("1e-40"), "more digits"),
    ],
)
async def test_wrong_types_are_rejected_naming_the_field(field: str, value: Any, message: str) -> None:
    with pytest.raises(chakra.DataError, match=message) as info:
        await Everything.objects.create(**{field: value})
    assert f"Everything.{field}" in str(info.value)
    assert await Everything.objects.count() == 0
