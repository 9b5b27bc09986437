"""Checked by mypy in test_typing.py (never run): what a type checker sees of the API."""

from __future__ import annotations

import datetime as dt
from typing import Any, assert_type

import chakra
from chakra import DateTime, Field, Integer, Model, QuerySet, Session, String
from chakra.functions import Coalesce, ExtractYear, JSONObject, Length, Lower, Rank, Substr, Upper


class User(Model):
    id = Field(Integer, primary_key=True)
    name = Field(String(100))
    nickname = Field(String(20), nullable=True)
    joined = Field(DateTime(timezone=True))
    seen = Field(DateTime(timezone=True), auto_now=True)
    status = Field(String(10), db_default="new")


class Team(Model):
    id = Field(Integer, primary_key=True)
    members: list[Member]  # declared by Member.team_id; annotated for type checkers


class Member(Model):
    id = Field(Integer, primary_key=True)
    team_id = Field(Integer, nullable=True, references=Team, related_name="members", relation="team")
    team: Team | None
    skills = chakra.ManyToMany(User, related_name="experts")


class OpenTasks(chakra.Manager["Task"]):
    def still_open(self) -> QuerySet[Task]:
        return self.filter(done=False)


class Task(Model):
    objects = OpenTasks()
    id = Field(Integer, primary_key=True)
    done = Field(chakra.Boolean, default=False)


async def checks(session: Session) -> None:
    assert_type(await Task.objects.still_open().count(), int)
    assert_type(await Task.objects.still_open(), list[Task])
    assert_type(await User.objects.all(), list[User])
    assert_type(await User.objects.filter(name="a"), list[User])
    assert_type(User.objects.filter(name="a").order_by("-id")[:10], QuerySet[User])
    assert_type(await User.objects.get(id=1), User)
    assert_type(await User.objects.first(), User | None)
    assert_type(User.objects.count_sync(), int)
    assert_type(User.objects.all_sync(), list[User])
    assert_type((await User.objects.get(id=1)).seen, dt.datetime)
    assert_type(await User(name="x").save(), None)
    assert_type(await User.objects.values_list("id", Substr("name", 1, 2), ExtractYear("joined")), list[tuple[Any, ...]])
    assert_type(await session.get(User, 1), User | None)
    assert_type(await User.objects.values_list("id", flat=True), list[Any])
    assert_type(await User.objects.last(), User | None)
    assert_type(await User.objects.latest("joined"), User)
    assert_type(User.objects.earliest_sync("joined"), User)
    assert_type(await User.objects.in_bulk([1, 2]), dict[Any, User])
    assert_type(User.objects.distinct().reverse(), QuerySet[User])
    assert_type(await User.objects.dates("joined", "month", order="DESC"), list[Any])
    assert_type(User.objects.contains_sync(User(name="x")), bool)
    assert_type(await User.objects.in_bulk(["a"], field_name="name"), dict[Any, User])
    assert_type(User.objects.values("name").union(User.objects.values("name")).reverse().last_sync(), dict[str, Any] | None)
    assert_type(User.objects.raw("SELECT * FROM users WHERE id = $1", 1).all_sync(), list[User])
    assert_type(User.objects.only("name").defer("joined").defer(None), QuerySet[User])
    assert_type(User.objects.filter(id=1).union(User.objects.all(), all=True).intersection(User.objects.none()), QuerySet[User])
    assert_type(await User.objects.all().difference(User.objects.filter(id=2)).order_by("id")[:2], list[User])
    assert_type(await User.objects.filter(id__lt=chakra.F("id") + 1).aggregate(n=chakra.Count("*")), dict[str, Any])
    assert_type(User.objects.aggregate_sync(chakra.Max("joined")), dict[str, Any])
    grouped = User.objects.values("name").annotate(n=chakra.Count("*")).order_by("-n")[:5]
    assert_type(await grouped, list[dict[str, Any]])
    assert_type(User.objects.values_list("name").annotate(chakra.Max("joined")).all_sync(), list[tuple[Any, ...]])
    assert_type(User.objects.values_list("id", flat=True).all_sync(), list[Any])
    months = User.objects.values(month=chakra.TruncMonth("joined")).annotate(n=chakra.Count("id"))
    assert_type(await months.order_by("month"), list[dict[str, Any]])
    assert_type(User.objects.annotate(day=chakra.Trunc("joined", "day")), QuerySet[User])
    assert_type(User.objects.alias(n=Length("name")).filter(n__gt=chakra.F("id")), QuerySet[User])
    assert_type(User.objects.annotate(card=JSONObject(name="name", n=chakra.Count("id") * 2)), QuerySet[User])
    assert_type(await months.count(), int)
    tier = chakra.Case(chakra.When(id__gt=1, then=chakra.Value("late")), default=Coalesce("name", chakra.Value("?")))
    assert_type(User.objects.annotate(tier=tier, n=Length("name") + 1), QuerySet[User])
    assert_type(await User.objects.filter(id=1).update(name=Lower("name")), int)
    assert_type(await User.objects.values(shown=Upper("name")), list[dict[str, Any]])
    ranked = User.objects.annotate(r=chakra.Window(Rank(), partition_by="name", order_by="-id"))
    assert_type(ranked.filter(r=1), QuerySet[User])
    member = await Member.objects.get(id=1)
    assert_type(member.skills, chakra.ManyRelated[User])
    assert_type(await member.skills.all(), list[User])
    assert_type(list(member.skills), list[User])
    assert_type(await member.skills.add(1, await User.objects.get(id=2)), None)
    member.skills.set_sync([])
    others = User.objects.filter(name=chakra.OuterRef("name"), id__lt=chakra.OuterRef("id"))
    assert_type(User.objects.filter(~chakra.Exists(others)).order_by(chakra.F("joined").desc(nulls_last=True)), QuerySet[User])
    assert_type(User.objects.annotate(first=chakra.Subquery(others.values("id")[:1])), QuerySet[User])
    upserted = User.objects.bulk_create(list[User](), update_conflicts=True, unique_fields=["id"], update_fields=["name"])
    assert_type(await upserted, list[User])
    assert_type(await User.objects.values("name").first(), dict[str, Any] | None)
    assert_type(User.objects.values_list("id", flat=True).get_sync(name="x"), Any)
    user = await User.objects.get(id=1)
    assert_type(await User.objects.bulk_update([user], ["name"]), int)
    assert_type(user.name, str)
    assert_type(user.nickname, str | None)
    assert_type(user.joined, dt.datetime)
    user.name = "x"
    # A misspelt field is an error (--strict flags this ignore if it is not).
    print(user.nmae)  # type: ignore[attr-defined]
    async for u in User.objects.stream():
        assert_type(u, User)
    async for batch in User.objects.stream(batch_size=10):
        assert_type(batch, list[User])
    assert_type(User.DoesNotExist, type[chakra.DoesNotExist])
    assert_type(Member.objects.prefetch_related("team", "team__members"), QuerySet[Member])
    member = await Member.objects.prefetch_related("team").get(id=1)
    assert_type(member.team, Team | None)
    assert_type(member.team_id, int | None)
    member.team = Team()
    for team in await Team.objects.prefetch_related("members").prefetch_related(None):
        assert_type(team.members, list[Member])
    assert_type(Team.objects.annotate(chakra.Count("members"), twice=chakra.F("id") * 2), QuerySet[Team])
    members_by_id = chakra.Prefetch("members", Member.objects.order_by("-id"))
    assert_type(Team.objects.prefetch_related(members_by_id, "members__team"), QuerySet[Team])
