"""Chakra's Python quick start: the spec's examples end to end, saying what each does.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test python examples/quickstart.py

Uses `chakra.toml` in the working directory, else CHAKRA_DATABASE_URL / DATABASE_URL.
Creates the tables `quickstart_users`, `quickstart_posts` and `quickstart_notifications`
(dropping them first if they exist).
"""

from __future__ import annotations

import asyncio
import time

import chakra
from chakra import (
    Boolean,
    Case,
    Count,
    Exists,
    Field,
    Integer,
    Model,
    OuterRef,
    Session,
    String,
    Subquery,
    Text,
    Value,
    When,
)
from chakra.functions import Upper


class User(Model):
    __tablename__ = "quickstart_users"
    id = Field(Integer, primary_key=True)
    name = Field(String(100))
    is_active = Field(Boolean, default=True)
    posts: list[Post]  # declared by Post.author_id; annotated for type checkers


class Post(Model):
    __tablename__ = "quickstart_posts"
    id = Field(Integer, primary_key=True)
    # A foreign key: Post.author (the User) and User.posts, for prefetch_related,
    # lookups across it (author__name=...) and annotate(n=Count("posts")).
    author_id = Field(Integer, index=True, references=User, related_name="posts")
    title = Field(String(200))
    author: User | None


class Notification(Model):
    __tablename__ = "quickstart_notifications"
    id = Field(Integer, primary_key=True)
    user_id = Field(Integer, index=True)
    read = Field(Boolean, default=False)
    message = Field(Text)


MODELS = [User, Post, Notification]


def step(title: str) -> None:
    print(f"\n== {title}")


async def setup() -> None:
    step("Creating the tables")
    await chakra.drop_all(MODELS)
    await chakra.create_all(MODELS)
    print("created", ", ".join(m.__tablename__ for m in MODELS))


async def basic_usage() -> None:
    step("Basic usage: a session, an insert, a filtered query")
    async with Session() as session:
        user = User(name="Alice")
        session.add(user)
        await session.commit()
        print(f"inserted {user!r} (the primary key came back from the database)")

        users = await User.objects.filter(name__startswith="A").all()
        for user in users:
            print("found:", user.name)


async def context_managers() -> None:
    step("Sessions, transactions and savepoints")
    async with Session() as session:
        async with session.begin():
            session.add_all([User(name="Bob"), User(name="Carol", is_active=False)])
        print("committed Bob and Carol in an explicit transaction")
        try:
            async with session.begin():
                session.add(User(name="Mallory"))
                await session.flush()
                raise RuntimeError("changed my mind")
        except RuntimeError:
            print("rolled back Mallory's transaction:", await User.objects.filter(name="Mallory").count(), "rows")

        bob = await User.objects.get(name="Bob")
        bob.name = "Robert"
        print("changed one attribute; the commit sends one UPDATE of that column")
    print("after the session:", await User.objects.get(id=bob.id))

    async with chakra.connect(chakra.default_database().url or "") as conn:
        pid = await conn.fetchval("SELECT pg_backend_pid()")
        print(f"a direct connection (outside the pool), server process {pid}")


async def bulk_and_stream() -> None:
    step("Bulk insert and streaming")
    start = time.perf_counter()
    users = await User.objects.bulk_create(User(name=f"user{i}", is_active=i % 3 != 0) for i in range(5000))
    print(f"bulk_create of {len(users)} users in {1000 * (time.perf_counter() - start):.1f} ms, "
          f"ids {users[0].id}..{users[-1].id}")
    authors = await User.objects.order_by("id")[:4].values_list("id", flat=True)
    await Post.objects.bulk_create(Post(author_id=authors[i % 4], title=f"Post {i}") for i in range(40))
    await Notification.objects.bulk_create(
        Notification(user_id=1, read=i % 2 == 0, message=f"notification {i}") for i in range(5)
    )

    active = 0
    async for user in User.objects.filter(is_active=True).stream():
        active += 1
    print(f"streamed {active} active users one by one")
    sizes = [len(batch) async for batch in User.objects.all().stream(batch_size=1000)]
    print("streamed every user in batches of", sizes)


async def get_dashboard_data(user_id: int) -> dict[str, object]:
    user, posts, notifications = await asyncio.gather(
        User.objects.get(id=user_id),
        Post.objects.filter(author_id=user_id).limit(10).all(),
        Notification.objects.filter(user_id=user_id, read=False).all(),
    )
    return {"user": user, "recent_posts": posts, "notifications": notifications}


async def concurrent() -> None:
    step("Concurrent queries with asyncio.gather")
    data = await get_dashboard_data(1)
    print(f"user {data['user']!r}: {len(data['recent_posts'])} posts, "  # type: ignore[arg-type]
          f"{len(data['notifications'])} unread notifications")  # type: ignore[arg-type]
    ids = await User.objects.order_by("id").limit(1000).values_list("id", flat=True)
    start = time.perf_counter()
    got = await asyncio.gather(*(User.objects.get(id=i) for i in ids))
    print(f"1,000 concurrent gets by primary key in {1000 * (time.perf_counter() - start):.1f} ms "
          f"(merged into batched queries); first {got[0].name}, last {got[-1].name}")


async def raw_sql() -> None:
    step("Raw SQL, parameterised")
    rows = await chakra.fetch(
        "SELECT is_active, count(*) AS n FROM quickstart_users GROUP BY is_active ORDER BY is_active"
    )
    print("rows are dicts:", rows)


async def aggregates_and_bulk_updates() -> None:
    step("Aggregates, groups and bulk updates")
    per_state = await User.objects.values("is_active").annotate(n=Count("*")).order_by("is_active")
    print("users per state:", per_state)
    posts = await Post.objects.aggregate(n=Count("*"), authors=Count("author_id", distinct=True))
    print("posts:", posts)
    notifications = await Notification.objects.filter(user_id=1).order_by("id")
    for n in notifications:
        n.message = n.message.upper()
    written = await Notification.objects.bulk_update(notifications, ["message"])
    print(f"bulk_update wrote {written} rows in one statement; last: {notifications[-1].message!r}")
    # An upsert: the row with that key exists, so only update_fields are written.
    (n,) = await Notification.objects.bulk_create(
        [Notification(id=notifications[0].id, user_id=1, message="ignored", read=True)],
        update_conflicts=True,
        unique_fields=["id"],
        update_fields=["read"],
    )
    print(f"upserted notification {n.id}: read={n.read}, message kept {n.message!r}")


async def relations() -> None:
    step("Relations: prefetch_related, select_related, lookups across them, annotate")
    posts = await Post.objects.filter(author__name="Alice").prefetch_related("author").order_by("id")[:2]
    print("Alice's posts:", [(p.title, p.author.name if p.author else None) for p in posts])
    # One statement: each post with its author (a LEFT JOIN), sorted by the author's name.
    joined = await Post.objects.select_related("author").order_by("-author__name", "id")[:2]
    print("joined with their authors:", [(p.title, p.author.name if p.author else None) for p in joined])
    per_name = Post.objects.values("author__name").annotate(n=Count("*")).order_by("author__name")
    print("posts per author name:", await per_name[:2])
    # Groups of users, each with its users' posts (Django's join).
    per_state = User.objects.values("is_active").annotate(posts=Count("posts")).order_by("is_active")
    print("posts per author state:", await per_state)
    busiest = User.objects.annotate(n=Count("posts")).filter(n__gt=0).order_by("-n", "id")
    print("posts per author:", await busiest.values_list("name", "n")[:2])
    for user in await busiest.prefetch_related("posts")[:1]:
        print(f"{user.name}'s {len(user.posts)} posts came with one more query for all of them")
    # Asked about each user in the same statement: has any post? the latest title?
    their_posts = Post.objects.filter(author=OuterRef("pk")).order_by("-id")
    writers = User.objects.annotate(
        kind=Case(When(Exists(their_posts), then=Value("writer")), default=Value("reader")),
        latest=Subquery(their_posts.values("title")[:1]),
        shown=Upper("name"),
    )
    print("each user, computed:", await writers.order_by("id").values_list("shown", "kind", "latest")[:2])


async def errors() -> None:
    step("Errors")
    try:
        User.objects.filter(nmae="Alice")
    except chakra.FieldError as e:
        print("FieldError before any SQL:", e)
    try:
        await User.objects.get(id=10**6)
    except User.DoesNotExist as e:
        print("User.DoesNotExist:", e)
    try:
        await User.objects.create(name=42)
    except chakra.DataError as e:
        print("DataError, nothing written:", e)


def sync_api() -> None:
    step("The sync API (scripts, Django views)")
    with Session() as session:
        user = session.get_sync(User, 1)
        assert user is not None
        user.name = "Updated"
        session.commit_sync()
        users = User.objects.filter(is_active=True).all_sync()
        count = User.objects.count_sync()
    print(f"renamed user 1 to {User.objects.get_sync(id=1).name!r}; {len(users)} active of {count}")


async def teardown() -> None:
    step("Dropping the tables")
    await chakra.drop_all(MODELS)
    print("done")


async def main() -> None:
    await setup()
    await basic_usage()
    await context_managers()
    await bulk_and_stream()
    await concurrent()
    await raw_sql()
    await aggregates_and_bulk_updates()
    await relations()
    await errors()
    # Sync calls belong in sync code: run them on a worker thread, not the event loop.
    await asyncio.to_thread(sync_api)
    await teardown()


if __name__ == "__main__":
    asyncio.run(main())
