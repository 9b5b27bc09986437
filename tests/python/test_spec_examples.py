"""Every Python example of the product spec (spec/async-native.md), as written.

Each test pastes one snippet unchanged (between the ``# --- spec`` markers) and supplies
what the snippet takes from its surroundings: the models (``User``, ``Post``,
``Notification``, ``Comment``), ``url``, ``user_ids``, ``process_user``, Django's
``render`` and FastAPI's ``HTTPException``. The first snippet declares its own ``User``
(table ``users``); the others share the models below.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import warnings
from typing import Any

import pytest

import chakra
from chakra import Boolean, Field, Integer, Model, Session, String, Text
from conftest import DATABASE_URL, recreate

url = DATABASE_URL
_TEMPLATES = tempfile.mkdtemp(prefix="chakra-spec-templates-")
atexit.register(shutil.rmtree, _TEMPLATES, ignore_errors=True)  # left in /tmp by every run otherwise


class User(Model):
    __tablename__ = "spec_users"
    id = Field(Integer, primary_key=True)
    name = Field(String(100))
    is_active = Field(Boolean, default=True)


class Post(Model):
    __tablename__ = "spec_posts"
    id = Field(Integer, primary_key=True)
    author_id = Field(Integer, index=True)
    title = Field(String(200))


class Notification(Model):
    __tablename__ = "spec_notifications"
    id = Field(Integer, primary_key=True)
    user_id = Field(Integer, index=True)
    read = Field(Boolean, default=False)
    message = Field(Text)


class Comment(Model):
    __tablename__ = "spec_comments"
    id = Field(Integer, primary_key=True)
    post_id = Field(Integer, index=True)
    body = Field(Text)


@pytest.fixture(autouse=True)
def data() -> None:
    recreate(User, Post, Notification, Comment)
    User.objects.bulk_create_sync(
        [User(name="Alice"), User(name="Bob"), User(name="Carol", is_active=False)]
        + [User(name=f"user{i}", is_active=i % 2 == 0) for i in range(2500)]
    )
    Post.objects.bulk_create_sync([Post(author_id=1 + i % 3, title=f"post {i}") for i in range(30)])
    Notification.objects.bulk_create_sync([Notification(user_id=1, read=i % 2 == 0, message=f"n{i}") for i in range(6)])
    Comment.objects.bulk_create_sync([Comment(post_id=p, body=f"c{p}") for p in range(1, 31)])


def test_basic_usage(capsys: pytest.CaptureFixture[str]) -> None:
    namespace: dict[str, Any] = {}
    # --- spec: Basic Usage
    code = '''
import asyncio
from chakra import Session, Model, Field, String, Integer

class User(Model):
    __tablename__ = "users"
    id = Field(Integer, primary_key=True)
    name = Field(String(100))

async def main():
    async with Session() as session:
        # All database operations are async
        user = User(name="Alice")
        session.add(user)
        await session.commit()

        # Queries are async
        users = await User.objects.filter(name__startswith="A").all()

        for user in users:
            print(user.name)

asyncio.run(main())
'''
    # --- end spec
    snippet_user = _define_basic_user()
    chakra.drop_all_sync([snippet_user])
    chakra.create_all_sync([snippet_user])
    exec(compile(code, "spec:basic-usage", "exec"), namespace)
    assert capsys.readouterr().out == "Alice\n"
    assert namespace["User"].objects.count_sync() == 1
    chakra.drop_all_sync([snippet_user])


def _define_basic_user() -> type[Model]:
    class User(Model):  # the snippet's model again, to create its table before it runs
        __tablename__ = "users"
        id = Field(Integer, primary_key=True)
        name = Field(String(100))

    return User


async def test_async_context_managers() -> None:
    # --- spec: Async Context Managers
    # Session
    async with Session() as session:
        # Auto-commits on success, rolls back on exception
        pass

    # Transaction
    async with session.begin():
        # Explicit transaction block
        pass

    # Connection
    async with chakra.connect(url) as conn:
        # Direct connection (bypasses pool)
        pass
    # --- end spec
    session.close()
    assert isinstance(conn, chakra.Connection)


async def test_async_iteration() -> None:
    processed: list[int] = []
    batches: list[int] = []

    async def process_user(user: User) -> None:
        processed.append(user.id)

    async def process_batch(batch: list[User]) -> None:
        batches.append(len(batch))

    # --- spec: Async Iteration
    # Stream large result sets
    async for user in User.objects.filter(is_active=True).stream():
        await process_user(user)

    # With batching
    async for batch in User.objects.all().stream(batch_size=1000):
        await process_batch(batch)
    # --- end spec
    assert len(processed) == 2 + 1250
    assert batches == [1000, 1000, 503]


async def test_concurrent_queries() -> None:
    # --- spec: Concurrent Queries
    import asyncio

    async def get_dashboard_data(user_id: int):
        # Run queries concurrently
        user, posts, notifications = await asyncio.gather(
            User.objects.get(id=user_id),
            Post.objects.filter(author_id=user_id).limit(10).all(),
            Notification.objects.filter(user_id=user_id, read=False).all(),
        )

        return {
            "user": user,
            "recent_posts": posts,
            "notifications": notifications,
        }
    # --- end spec

    data = await get_dashboard_data(1)
    assert data["user"].name == "Alice"
    assert len(data["recent_posts"]) == 10 and all(p.author_id == 1 for p in data["recent_posts"])
    assert sorted(n.message for n in data["notifications"]) == ["n1", "n3", "n5"]


def test_sync_api() -> None:
    # --- spec: Python Sync API
    from chakra import Session

    def sync_example():
        with Session() as session:
            # Use _sync suffix for sync operations
            user = session.get_sync(User, 1)
            user.name = "Updated"
            session.commit_sync()

            # QuerySet sync methods
            users = User.objects.filter(is_active=True).all_sync()
            count = User.objects.count_sync()
    # --- end spec
        return users, count

    users, count = sync_example()
    assert count == 2503
    assert len(users) == 1252
    assert User.objects.get_sync(id=1).name == "Updated"


async def test_mixing_async_and_sync(monkeypatch: pytest.MonkeyPatch) -> None:
    # --- spec: Mixing Async and Sync
    # In an async context, prefer async
    async def async_view():
        user = await User.objects.get(id=1)  # ✅ Async

    # In a sync context (Django, scripts)
    def sync_view():
        user = User.objects.get_sync(id=1)  # ✅ Sync wrapper

    # ❌ Don't call sync from async (blocks event loop)
    async def bad_example():
        user = User.objects.get_sync(id=1)  # ⚠️ Warning in dev mode
    # --- end spec

    await async_view()
    await asyncio.to_thread(sync_view)
    monkeypatch.delenv("CHAKRA_DEV", raising=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", chakra.SyncInAsyncWarning)
        if not sys.flags.dev_mode:
            await bad_example()  # works, silently, outside dev mode
    monkeypatch.setenv("CHAKRA_DEV", "1")
    with pytest.warns(chakra.SyncInAsyncWarning):
        await bad_example()


def test_fastapi() -> None:
    from fastapi import HTTPException  # the snippet uses it without importing it
    from fastapi.testclient import TestClient

    namespace: dict[str, Any] = {"User": User, "HTTPException": HTTPException}
    # --- spec: FastAPI (Async)
    code = '''
from fastapi import FastAPI, Depends
from chakra import Session

app = FastAPI()

async def get_session():
    async with Session() as session:
        yield session

@app.get("/users/{user_id}")
async def get_user(user_id: int, session: Session = Depends(get_session)):
    user = await session.get(User, user_id)
    if not user:
        raise HTTPException(404)
    return user
'''
    # --- end spec
    exec(compile(code, "spec:fastapi", "exec"), namespace)
    with TestClient(namespace["app"]) as client:
        ok = client.get("/users/2")
        assert ok.status_code == 200
        assert ok.json() == {"id": 2, "name": "Bob", "is_active": True}
        assert client.get("/users/999999").status_code == 404


def test_django_views() -> None:
    import django
    from django.conf import settings

    with open(os.path.join(_TEMPLATES, "users.html"), "w") as f:
        f.write("{% for u in users %}{{ u.name }};{% endfor %}")
    if not settings.configured:
        settings.configure(
            TEMPLATES=[{"BACKEND": "django.template.backends.django.DjangoTemplates", "DIRS": [_TEMPLATES]}]
        )
        django.setup()
    from django.shortcuts import render
    from django.test import RequestFactory

    # --- spec: Django (Sync with Async Views)
    # Sync view
    def user_list(request):
        users = User.objects.all_sync()
        return render(request, "users.html", {"users": users})

    # Async view (Django 4.1+)
    async def user_list_async(request):
        users = await User.objects.all()
        return render(request, "users.html", {"users": users})
    # --- end spec

    User.objects.filter(id__gt=3).delete_sync()
    request = RequestFactory().get("/users")
    assert user_list(request).content == b"Alice;Bob;Carol;"
    assert asyncio.run(user_list_async(request)).content == b"Alice;Bob;Carol;"


async def test_connection_pool_session() -> None:
    # Another test's connection may still be finishing its cleanup (a ROLLBACK on the
    # runtime): the session must give back what it took, not empty the pool.
    in_use = chakra.default_database().status()["in_use"]
    # --- spec: Connection Pool & Async
    # Connection acquisition is async and non-blocking
    async with Session() as session:
        # Acquires connection from pool (non-blocking)
        user = await session.get(User, 1)
    # Connection returned to pool
    # --- end spec
    assert user is not None and user.name == "Alice"
    assert chakra.default_database().status()["in_use"] <= in_use
    # Back when the block ends, not soon after (it was once dropped on a task of its own).
    for _ in range(100):
        async with Session() as session:
            await session.get(User, 1)
        assert chakra.default_database().status()["in_use"] <= in_use


def test_chakra_toml_pool_section(tmp_path: os.PathLike[str]) -> None:
    (tmp_path / "chakra.toml").write_text(  # type: ignore[operator]
        textwrap.dedent(
            """
            # chakra.toml
            [pool]
            min_connections = 5      # Keep 5 connections ready
            max_connections = 20     # Scale up to 20 under load
            acquire_timeout = "30s"  # Wait up to 30s for a connection
            idle_timeout = "10m"     # Close idle connections after 10m
            """
        )
    )
    script = textwrap.dedent(
        """
        import asyncio, chakra
        from chakra import Session
        async def main():
            async with Session() as session:
                print(await session.fetchval("SELECT 1"))
            print(chakra.default_database().status()["max_size"], chakra.default_database().status()["size"])
        asyncio.run(main())
        """
    )
    env = dict(os.environ, DATABASE_URL=DATABASE_URL)
    env.pop("CHAKRA_DATABASE_URL", None)
    out = subprocess.run([sys.executable, "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["1", "20", "5"]


async def test_gil_release() -> None:
    # --- spec: GIL Release
    # GIL released here - other Python threads can run
    users = await User.objects.all()
    # --- end spec
    assert len(users) == 2503


async def test_batching() -> None:
    user_ids = [1, 2, 3, 10, 20]
    fetched = []
    # --- spec: Batching
    # ❌ Inefficient: 100 round trips
    for id in user_ids:
        user = await User.objects.get(id=id)
        fetched.append(user)

    # ✅ Efficient: 1 round trip
    users = await User.objects.filter(id__in=user_ids).all()
    # --- end spec
    assert sorted(u.id for u in users) == user_ids == [u.id for u in fetched]


async def test_connection_reuse() -> None:
    pids: set[int] = set()
    # --- spec: Connection Reuse
    async with Session() as session:
        # All queries use the same connection
        user = await session.get(User, 1)
        posts = await Post.objects.filter(author_id=1).all()
        comments = await Comment.objects.filter(post_id__in=[p.id for p in posts]).all()
    # --- end spec
        pids.add(await session.fetchval("SELECT pg_backend_pid()"))
        pids.add(await chakra.fetchval("SELECT pg_backend_pid()"))
    assert user is not None and len(posts) == 10 and len(comments) == 10
    assert len(pids) == 1
