"""One-to-one relations, Django's ``OneToOneField``: a unique foreign key refers to a row
at most once, so the relation back from that row is one row or ``None``
(``user.profile``), loaded, joined, filtered, read and ordered as a single value."""

from __future__ import annotations

import re

import pytest

import chakra
from chakra import Count, F, Field, FieldError, Integer, Model, String
from conftest import recreate


class Member(Model):
    __tablename__ = "oo_members"
    id = Field(Integer, primary_key=True)
    name = Field(String(20))


class Profile(Model):
    __tablename__ = "oo_profiles"
    id = Field(Integer, primary_key=True)
    bio = Field(String(40))
    member_id = Field(Integer, references=Member, unique=True, on_delete="cascade")


class Badge(Model):
    """Keyed by its member: the primary key is the foreign key."""

    __tablename__ = "oo_badges"
    member_id = Field(Integer, primary_key=True, references=Member, related_name="badge")
    level = Field(Integer)


@pytest.fixture(autouse=True)
def members() -> None:
    recreate(Member, Profile, Badge)
    ann, _bob = Member.objects.bulk_create_sync([Member(name="ann"), Member(name="bob")])
    Profile.objects.create_sync(bio="writes", member_id=ann.id)
    Badge.objects.create_sync(member_id=ann.id, level=3)


def test_the_reverse_of_a_unique_key_is_one_row() -> None:
    relation = Member._meta.relations["profile"]
    assert not relation.many and relation.reverse
    assert repr(relation) == "<Relation Member.profile: Profile | None through Profile.member_id>"
    assert "badge" in Member._meta.relations and "profile_set" not in Member._meta.relations


async def test_prefetch_and_select_related_load_it() -> None:
    members = await Member.objects.prefetch_related("profile", "badge").order_by("id")
    assert [(m.name, m.profile and m.profile.bio, m.badge and m.badge.level) for m in members] == [
        ("ann", "writes", 3),
        ("bob", None, None),
    ]
    query = Member.objects.select_related("profile").order_by("id")
    assert 'LEFT JOIN "oo_profiles" AS "chakra_join_1" ON "chakra_join_1"."member_id" = ' in query.sql()[0]
    joined = await query
    assert [(m.name, m.profile and m.profile.bio) for m in joined] == [("ann", "writes"), ("bob", None)]
    back = await Profile.objects.select_related("member")
    assert [(p.bio, p.member.name) for p in back] == [("writes", "ann")]


async def test_filtered_read_ordered_and_counted_as_one_value() -> None:
    names = lambda qs: qs.values_list("name", flat=True)  # noqa: E731
    assert await names(Member.objects.filter(profile__bio="writes")) == ["ann"]
    assert await names(Member.objects.filter(profile__isnull=True)) == ["bob"]
    assert await names(Member.objects.filter(badge__level__gte=2)) == ["ann"]
    rows = await Member.objects.order_by("-profile__bio").values("name", "profile", "profile__bio")
    assert rows == [
        {"name": "bob", "profile": None, "profile__bio": None},
        {"name": "ann", "profile": 1, "profile__bio": "writes"},
    ]
    ordered = await Member.objects.order_by("badge__level", "name")
    assert [m.name for m in ordered] == ["ann", "bob"], "instances sort by it (one value each)"
    annotated = await Member.objects.annotate(bio=F("profile__bio"), n=Count("profile")).order_by("id")
    assert [(m.bio, m.n) for m in annotated] == [("writes", 1), (None, 0)]


async def test_it_is_set_from_the_row_referring_to_it() -> None:
    ann = await Member.objects.get(name="ann")
    with pytest.raises(AttributeError, match=re.escape("set Profile.member_id on the Profile instead")):
        ann.profile = None
    with pytest.raises(TypeError, match="unexpected field 'profile'"):
        Member(name="x", profile=None)
    with pytest.raises(chakra.IntegrityError):
        await Profile.objects.create(bio="second", member_id=ann.id)
    with pytest.raises(chakra.ProgrammingError, match=re.escape('use Member.objects.prefetch_related("profile")')):
        ann.profile  # noqa: B018
    with pytest.raises(FieldError, match=re.escape("unknown field `nope` on `oo_profiles`")):
        await Member.objects.filter(profile__nope=1)
    # Only a model's own foreign key stands for its key in order_by() and distinct():
    # the reverse of another's is no key of this row.
    with pytest.raises(FieldError, match=re.escape("unknown field `profile` on `oo_members`")):
        await Member.objects.order_by("profile")
    with pytest.raises(FieldError, match=re.escape("unknown field `profile` on `oo_members`")):
        Member.objects.distinct("profile")
    assert [p.bio for p in await Profile.objects.order_by("member", "bio")] == ["writes"]
