"""Many-to-many relations: the model of pairs made for them, changing the pairs (add,
remove, clear, set; in a session or in a transaction of their own), reading them
(``all()``, ``prefetch_related``), lookups and aggregates through them, and
``__unique_together__``."""

from __future__ import annotations

import re

import pytest

import chakra
from chakra import Count, Field, Integer, ManyRelated, ManyToMany, Model, Prefetch, Q, Session, String, Sum
from conftest import recreate


class Tag(Model):
    __tablename__ = "mm_tags"
    id = Field(Integer, primary_key=True)
    name = Field(String(20), unique=True)
    posts: ManyRelated[Post]


class Post(Model):
    __tablename__ = "mm_posts"
    id = Field(Integer, primary_key=True)
    title = Field(String(20))
    tags = ManyToMany(Tag, related_name="posts")


class Person(Model):
    __tablename__ = "mm_people"
    id = Field(Integer, primary_key=True)
    name = Field(String(20))
    follows = ManyToMany("self", related_name="followers")


class Seat(Model):
    __tablename__ = "mm_seats"
    __unique_together__ = [("row", "number")]
    id = Field(Integer, primary_key=True)
    row = Field(String(2))
    number = Field(Integer, column="seat_number")


@pytest.fixture(autouse=True)
def tables() -> None:
    recreate(Tag, Post, Person, Seat)


async def test_pairs_live_in_a_table_of_their_own() -> None:
    through = Post.tags.through
    assert through._meta.table == "mm_posts_tags"
    assert sorted(through._meta.fields) == ["id", "post_id", "tag_id"]
    assert Tag.posts.through is through
    py, rs = await Tag.objects.bulk_create([Tag(name="py"), Tag(name="rs")])
    post = await Post.objects.create(title="p")
    await post.tags.add(py, rs, rs.id, py)  # each pair once, however often it is given
    assert await through.objects.count() == 2
    # Deleting either row deletes its pairs.
    await Tag.objects.filter(id=py.id).delete()
    assert await through.objects.count() == 1
    await Post.objects.filter(id=post.id).delete()
    assert await through.objects.count() == 0


async def test_add_remove_clear_and_set() -> None:
    py, rs, go = await Tag.objects.bulk_create([Tag(name="py"), Tag(name="rs"), Tag(name="go")])
    post, other = await Post.objects.bulk_create([Post(title="p"), Post(title="q")])
    names = lambda qs: sorted(t.name for t in qs)  # noqa: E731
    await post.tags.add(py, rs)
    await other.tags.add(rs)
    assert names(await post.tags.all()) == ["py", "rs"]
    assert await post.tags.count() == 2
    assert names(await post.tags.filter(name__startswith="r")) == ["rs"]
    assert [p.title for p in await rs.posts.all().order_by("id")] == ["p", "q"]
    await post.tags.remove(py)
    assert names(await post.tags.all()) == ["rs"]
    await post.tags.set([go, py.id])
    assert names(await post.tags.all()) == ["go", "py"]
    await post.tags.clear()
    assert await post.tags.count() == 0
    assert names(await other.tags.all()) == ["rs"], "another post's pairs stay"
    # The sync twins.
    post.tags.add_sync(go)
    post.tags.remove_sync(go)
    post.tags.set_sync([rs])
    assert [t.name for t in post.tags.all().all_sync()] == ["rs"]
    post.tags.clear_sync()
    assert post.tags.count_sync() == 0


async def test_changes_in_a_session_are_part_of_its_transaction() -> None:
    py = await Tag.objects.create(name="py")
    async with Session() as session:
        post = Post(title="p")
        session.add(post)
        await session.flush()
        await post.tags.add(py)
        assert await post.tags.count() == 1
        await session.rollback()
    assert await Post.tags.through.objects.count() == 0
    # `set` outside a session is one transaction: a failure leaves the pairs as they were.
    post = await Post.objects.create(title="p")
    await post.tags.add(py)
    with pytest.raises(chakra.IntegrityError):
        await post.tags.set([12345])  # no such tag
    assert [t.name for t in await post.tags.all()] == ["py"]


async def test_prefetch_related_loads_the_rows_of_all_instances_in_two_queries() -> None:
    py, rs, go = await Tag.objects.bulk_create([Tag(name="py"), Tag(name="rs"), Tag(name="go")])
    p, q, r = await Post.objects.bulk_create([Post(title="p"), Post(title="q"), Post(title="r")])
    await p.tags.add(rs, py)
    await q.tags.add(rs)
    posts = await Post.objects.prefetch_related("tags").order_by("id")
    assert [(x.title, [t.name for t in x.tags]) for x in posts] == [("p", ["py", "rs"]), ("q", ["rs"]), ("r", [])]
    assert len(posts[0].tags) == 2 and posts[0].tags[1].name == "rs"
    # The related queryset orders and picks them; nested relations load through them.
    newest = Prefetch("posts", Post.objects.order_by("-id"))
    tags = await Tag.objects.prefetch_related(newest, "posts__tags").order_by("id")
    assert [(t.name, [x.title for x in t.posts]) for t in tags] == [("py", ["p"]), ("rs", ["q", "p"]), ("go", [])]
    assert [t.name for t in tags[1].posts[1].tags] == ["py", "rs"]
    with pytest.raises(chakra.ProgrammingError, match=re.escape('Post.tags was not loaded: use Post.objects.prefetch_related("tags")')):
        list(r.tags)
    # A change drops what was loaded.
    loaded = posts[1]
    await loaded.tags.add(go)
    with pytest.raises(chakra.ProgrammingError, match="was not loaded"):
        len(loaded.tags)


async def test_lookups_and_aggregates_go_through_the_pairs() -> None:
    py, rs, go = await Tag.objects.bulk_create([Tag(name="py"), Tag(name="rs"), Tag(name="go")])
    p, q, r = await Post.objects.bulk_create([Post(title="p"), Post(title="q"), Post(title="r")])
    await p.tags.add(py, rs)
    await q.tags.add(rs)
    titles = lambda qs: qs.order_by("id").values_list("title", flat=True)  # noqa: E731
    assert await titles(Post.objects.filter(tags__name="rs")) == ["p", "q"]
    assert await titles(Post.objects.filter(tags=py)) == ["p"]
    assert await titles(Post.objects.exclude(tags__name="rs")) == ["r"]
    # The posts sharing a tag with q.
    assert await titles(Post.objects.filter(tags__posts__title="q")) == ["p", "q"]
    counted = Post.objects.annotate(n=Count("tags")).order_by("id").values_list("title", "n")
    assert await counted == [("p", 2), ("q", 1), ("r", 0)]
    per_tag = Tag.objects.annotate(n=Count("posts")).filter(n__gt=0).order_by("-n", "name")
    assert await per_tag.values_list("name", "n") == [("rs", 2), ("py", 1)]
    assert await Post.objects.aggregate(pairs=Count("tags")) == {"pairs": 3}
    # An aggregate's filter names the rows it reaches through the pairs.
    rust = Q(tags__name="rs")
    assert await Post.objects.aggregate(n=Count("tags__name", filter=rust), ids=Sum("tags__id", filter=rust)) == {
        "n": 2,
        "ids": 2 * rs.id,
    }
    rusty = Post.objects.annotate(n=Count("tags__name", filter=rust)).order_by("id").values_list("n", flat=True)
    assert await rusty == [1, 1, 0]
    with pytest.raises(chakra.FieldError, match="many-to-many relation"):
        Post.objects.select_related("tags")


async def test_a_relation_to_the_same_model_goes_one_way() -> None:
    ann, bob, cy = await Person.objects.bulk_create([Person(name="ann"), Person(name="bob"), Person(name="cy")])
    assert sorted(Person.follows.through._meta.fields) == ["from_person_id", "id", "to_person_id"]
    await ann.follows.add(bob, cy)
    await bob.follows.add(cy)
    assert sorted(p.name for p in await ann.follows.all()) == ["bob", "cy"]
    assert sorted(p.name for p in await cy.followers.all()) == ["ann", "bob"]
    assert await ann.followers.count() == 0
    popular = Person.objects.annotate(n=Count("followers")).order_by("-n", "name").values_list("name", "n")
    assert await popular == [("cy", 2), ("bob", 1), ("ann", 0)]


async def test_misuse_is_refused() -> None:
    tag = await Tag.objects.create(name="py")
    unsaved = Post(title="p")
    with pytest.raises(ValueError, match="the Post is not saved yet"):
        await unsaved.tags.add(tag)
    post = await Post.objects.create(title="p")
    with pytest.raises(ValueError, match="an unsaved Tag has no key to pair"):
        await post.tags.add(Tag(name="new"))
    with pytest.raises(TypeError, match="Post.tags pairs Tag rows, not"):
        await post.tags.add(post)
    with pytest.raises(AttributeError, match=re.escape("Post.tags cannot be assigned: use tags.set([...])")):
        post.tags = [tag]  # type: ignore[assignment]
    with pytest.raises(TypeError, match='ManyToMany\\(\\) takes a model or "self"'):
        ManyToMany("Tag")
    with pytest.raises(TypeError, match="the relation Tag.name is taken"):

        class Clash(Model):
            __tablename__ = "mm_clash"
            id = Field(Integer, primary_key=True)
            things = ManyToMany(Tag, related_name="name")

    assert "mm_clash" not in [m._meta.table for m in chakra.models.registered_models()], "a refused class leaves no trace"


async def test_unique_together() -> None:
    await Seat.objects.create(row="A", number=1)
    await Seat.objects.create(row="A", number=2)
    with pytest.raises(chakra.IntegrityError) as failed:
        await Seat.objects.create(row="A", number=1)
    assert failed.value.constraint == "mm_seats_row_seat_number_key"
    with pytest.raises(TypeError, match=re.escape("__unique_together__ takes groups of two or more of its fields")):

        class Bad(Model):
            __tablename__ = "mm_bad"
            __unique_together__ = [("id", "nope")]
            id = Field(Integer, primary_key=True)


async def test_values_across_a_many_to_many_relation_give_a_row_per_pair() -> None:
    py, rs = await Tag.objects.bulk_create([Tag(name="py"), Tag(name="rs")])
    p, q, _ = await Post.objects.bulk_create([Post(title="p"), Post(title="q"), Post(title="r")])
    await p.tags.add(py, rs)
    await q.tags.add(rs)
    rows = await Post.objects.order_by("title", "tags__name").values_list("title", "tags__name")
    assert rows == [("p", "py"), ("p", "rs"), ("q", "rs"), ("r", None)]
    per_tag = Post.objects.values("tags__name").annotate(n=Count("id")).order_by("tags__name")
    assert await per_tag == [{"tags__name": "py", "n": 1}, {"tags__name": "rs", "n": 2}, {"tags__name": None, "n": 1}]
    titles = await Tag.objects.filter(name="rs").values_list("posts__title", flat=True).order_by("posts__title")
    assert titles == ["p", "q"]


async def test_a_filter_across_the_pairs_picks_the_tags_reached_too() -> None:
    """As Django's join reuse: the tags ``values("tags__name")`` reaches are those the
    filter kept, through pairs that lead to them (no row for a pair whose tag was not
    kept), and ``Count("tags")`` counts those."""
    py, rs, go = await Tag.objects.bulk_create([Tag(name="py"), Tag(name="rs"), Tag(name="go")])
    p, q = await Post.objects.bulk_create([Post(title="p"), Post(title="q")])
    await p.tags.add(py, rs, go)
    await q.tags.add(go)
    either = Post.objects.filter(Q(tags__name="py") | Q(tags__name="go"))
    rows = await either.order_by("title", "tags__name").values_list("title", "tags__name")
    assert rows == [("p", "go"), ("p", "py"), ("q", "go")]
    assert [(x.title, x.n) for x in await either.annotate(n=Count("tags")).order_by("title")] == [("p", 2), ("q", 1)]
    one = Post.objects.filter(tags__name="rs").values_list("title", "tags__name")
    assert await one == [("p", "rs")]
    back = Tag.objects.filter(posts__title="q").order_by("name").values_list("name", "posts__title")
    assert await back == [("go", "q")]
