"""chakra_fastapi and examples/fastapi_app.py, in-process (httpx's ASGI transport) and
over HTTP against a real uvicorn server on 127.0.0.1: every ``client`` test runs both ways.

The module's default database is a pool of 10 whose connections carry the
application_name ``chakra_fastapi_test``, so ``pg_stat_activity`` can tell them apart.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pydantic
import pytest
import uvicorn
from fastapi import FastAPI

import chakra
from chakra_fastapi import Lifespan, SessionDep, add_exception_handlers, schema
from conftest import DATABASE_URL, recreate

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "examples"))
import fastapi_app  # noqa: E402
from fastapi_app import Post, User, app  # noqa: E402

APP_NAME = "chakra_fastapi_test"
POOL_SIZE = 10


def _with_application_name(url: str, name: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}application_name={name}"


class Boom(Exception):
    """Raised by the test endpoint after it wrote."""


@app.post("/test/write-then-raise")
async def write_then_raise(session: SessionDep) -> None:
    session.add(User(email="ghost@example.com", name="Ghost"))
    await session.flush()
    assert await User.objects.filter(email="ghost@example.com").count() == 1
    raise Boom("after the write")


@app.exception_handler(Boom)
async def _boom(request: Any, exc: Exception) -> Any:
    from fastapi.responses import JSONResponse

    return JSONResponse({"detail": str(exc)}, status_code=500)


@pytest.fixture(scope="module", autouse=True)
def app_database() -> Iterator[chakra.Database]:
    db = chakra.configure(_with_application_name(DATABASE_URL, APP_NAME), max_connections=POOL_SIZE)
    yield db
    db.close()
    chakra.configure(DATABASE_URL)


@pytest.fixture(autouse=True)
def tables(app_database: chakra.Database) -> None:
    recreate(User, Post)


@contextmanager
def serve(asgi_app: Any) -> Iterator[str]:
    """Runs ``asgi_app`` under uvicorn on a free port of 127.0.0.1 in a thread (its own
    event loop, lifespan on); yields its base URL and stops it afterwards."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(asgi_app, lifespan="on", log_level="warning", backlog=512))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        for _ in range(500):
            if server.started or not thread.is_alive():
                break
            threading.Event().wait(0.01)
        assert server.started, "uvicorn did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
        assert not thread.is_alive(), "uvicorn did not stop"


@pytest.fixture(scope="module")
def server(app_database: chakra.Database) -> Iterator[str]:
    with serve(app) as url:
        yield url


@pytest.fixture(params=["asgi", "uvicorn"])
async def client(request: pytest.FixtureRequest) -> AsyncIterator[httpx.AsyncClient]:
    if request.param == "asgi":
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://asgi") as c:
            yield c
    else:
        base_url = request.getfixturevalue("server")
        limits = httpx.Limits(max_connections=300, max_keepalive_connections=300)
        async with httpx.AsyncClient(base_url=base_url, timeout=60, limits=limits) as c:
            yield c


async def test_spec_example_as_written() -> None:
    from fastapi import HTTPException

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
    spec_app = namespace["app"]
    user = await User.objects.create(email="ada@example.com", name="Ada", bio=None)

    async def check(c: httpx.AsyncClient) -> None:
        ok = await c.get(f"/users/{user.id}")
        assert ok.status_code == 200
        body = ok.json()
        # No response_model: FastAPI's own encoder handles UUID, Decimal and datetime.
        assert body["public_id"] == str(user.public_id)
        assert body["balance"] in ("0.00", 0.0)
        assert body["joined_at"].startswith(user.joined_at.isoformat()[:19])
        assert (await c.get("/users/999999")).status_code == 404

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=spec_app), base_url="http://asgi") as c:
        await check(c)
    with serve(spec_app) as url:
        async with httpx.AsyncClient(base_url=url) as c:
            await check(c)


async def test_crud_round_trip(client: httpx.AsyncClient) -> None:
    created = await client.post("/users", json={"email": "ada@example.com", "name": "Ada", "balance": "12.50"})
    assert created.status_code == 201, created.text
    user = created.json()
    assert user["id"] > 0 and user["balance"] == "12.50" and user["bio"] is None
    uid = user["id"]

    assert (await client.get(f"/users/{uid}")).json() == user
    patched = await client.patch(f"/users/{uid}", json={"bio": "mathematician"})
    assert patched.status_code == 200 and patched.json()["bio"] == "mathematician"
    assert (await User.objects.get(id=uid)).bio == "mathematician"

    for i in range(5):
        post = await client.post(f"/users/{uid}/posts", json={"title": f"post {i}"})
        assert post.status_code == 201, post.text
        assert post.json()["author_id"] == uid and post.json()["published"] is False
    page = await client.get(f"/users/{uid}/posts", params={"limit": 2, "offset": 2})
    assert [p["title"] for p in page.json()] == ["post 2", "post 3"]
    post_id = page.json()[0]["id"]
    assert (await client.get(f"/posts/{post_id}")).json()["title"] == "post 2"

    await client.post("/users", json={"email": "bob@example.com", "name": "Bob"})
    await client.post("/users", json={"email": "cy@example.com", "name": "Cy"})
    listed = await client.get("/users", params={"limit": 2, "offset": 1})
    assert [u["name"] for u in listed.json()] == ["Bob", "Cy"]

    streamed = await client.get("/users.ndjson")
    assert streamed.headers["content-type"].startswith("application/x-ndjson")
    lines = [line for line in streamed.text.split("\n") if line]
    assert [httpx.Response(200, content=line).json()["name"] for line in lines] == ["Ada", "Bob", "Cy"]

    assert (await client.delete(f"/users/{uid}")).status_code == 204
    assert (await client.get(f"/users/{uid}")).status_code == 404
    assert await Post.objects.filter(author_id=uid).count() == 0


async def test_error_paths(client: httpx.AsyncClient) -> None:
    missing = await client.get("/users/424242")
    assert missing.status_code == 404 and "User" in missing.json()["detail"]
    assert (await client.post("/users/424242/posts", json={"title": "x"})).status_code == 404

    assert (await client.post("/users", json={"email": "ada@example.com", "name": "Ada"})).status_code == 201
    conflict = await client.post("/users", json={"email": "ada@example.com", "name": "Other"})
    assert conflict.status_code == 409
    assert conflict.json()["constraint"] == "app_users_email_key"
    assert "app_users_email_key" in conflict.json()["detail"]

    too_long = await client.post("/users", json={"email": "x@example.com", "name": "x" * 101})
    assert too_long.status_code == 422
    assert too_long.json()["detail"][0]["loc"] == ["body", "name"]
    wrong_type = await client.post("/users", json={"email": "y@example.com", "name": "Y", "public_id": "nope"})
    assert wrong_type.status_code == 422 and wrong_type.json()["detail"][0]["loc"] == ["body", "public_id"]
    missing_field = await client.post("/users", json={"name": "Z"})
    assert missing_field.status_code == 422 and missing_field.json()["detail"][0]["loc"] == ["body", "email"]
    read_only = await client.post("/users", json={"id": 77, "email": "w@example.com", "name": "W"})
    assert read_only.status_code == 201 and read_only.json()["id"] != 77
    assert await User.objects.count() == 2


async def test_endpoint_raising_after_a_write_leaves_nothing_written(client: httpx.AsyncClient) -> None:
    response = await client.post("/test/write-then-raise")
    assert response.status_code == 500
    assert await User.objects.filter(email="ghost@example.com").count() == 0
    busy = await chakra.fetch(
        "SELECT state FROM pg_stat_activity WHERE application_name = $1 AND state LIKE 'idle in transaction%'",
        APP_NAME,
    )
    assert busy == []


async def test_300_concurrent_requests_with_a_pool_of_10(client: httpx.AsyncClient) -> None:
    users = await User.objects.bulk_create([User(email=f"u{i}@example.com", name=f"u{i}") for i in range(30)])

    async def one(i: int) -> httpx.Response:
        if i % 3 == 0:
            return await client.post(f"/users/{users[i % 30].id}/posts", json={"title": f"t{i}"})
        return await client.get(f"/users/{users[i % 30].id}")

    responses = await asyncio.gather(*(one(i) for i in range(300)))
    assert [r.status_code for r in responses if r.status_code not in (200, 201)] == []
    assert await Post.objects.count() == 100
    assert chakra.default_database().status()["size"] <= POOL_SIZE
    rows = await chakra.fetch(
        "SELECT pid, state FROM pg_stat_activity WHERE application_name = $1", APP_NAME
    )
    assert 0 < len(rows) <= POOL_SIZE
    assert [r for r in rows if str(r["state"]).startswith("idle in transaction")] == []


async def test_openapi_lists_model_schemas_with_types(client: httpx.AsyncClient) -> None:
    doc = (await client.get("/openapi.json")).json()
    schemas = doc["components"]["schemas"]
    user = schemas["User"]["properties"]
    assert user["id"]["type"] == "integer" and user["id"]["readOnly"] is True
    assert user["name"] == {"type": "string", "maxLength": 100, "title": "Name"}
    assert user["public_id"]["format"] == "uuid"
    assert user["joined_at"]["format"] == "date-time"
    assert {"type": "null"} in user["bio"]["anyOf"]
    create = schemas["UserCreate"]
    assert "id" not in create["properties"]
    assert set(create["required"]) == {"email", "name"}
    assert schemas["UserUpdate"].get("required", []) == []
    post_body = doc["paths"]["/users"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert post_body == {"$ref": "#/components/schemas/UserCreate"}
    assert schemas["Post"]["properties"]["published"]["type"] == "boolean"


async def test_lifespan_warms_min_connections_and_closes_the_pool() -> None:
    db = chakra.Database(_with_application_name(DATABASE_URL, "chakra_fastapi_lifespan"), min_connections=3)
    lifespan_app = FastAPI(lifespan=Lifespan(db))

    @lifespan_app.get("/n")
    async def n(session: SessionDep) -> int:
        return int(await session.fetchval("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", "chakra_fastapi_lifespan"))

    async with lifespan_app.router.lifespan_context(lifespan_app):
        assert db.status()["size"] == 3
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=lifespan_app), base_url="http://asgi") as c:
            assert (await c.get("/n")).json() == 3
    assert db.status()["size"] == 0


async def test_pool_timeout_is_503_with_retry_after_and_query_timeout_504() -> None:
    db = chakra.Database(DATABASE_URL, max_connections=1, acquire_timeout=0.2, query_timeout=0.3)
    small = FastAPI(lifespan=Lifespan(db))
    add_exception_handlers(small)

    @small.get("/one")
    async def one(session: SessionDep) -> int:
        return int(await session.fetchval("SELECT 1"))

    @small.get("/slow")
    async def slow(session: SessionDep) -> Any:
        return await session.fetchval("SELECT pg_sleep(2)")

    async with small.router.lifespan_context(small):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=small), base_url="http://asgi") as c:
            assert (await c.get("/one")).json() == 1
            async with chakra.Session(db) as holder:
                await holder.fetchval("SELECT 1")  # pins the pool's only connection
                busy = await c.get("/one")
            assert busy.status_code == 503
            assert busy.headers["retry-after"] == "1"
            assert (await c.get("/slow")).status_code == 504
            assert (await c.get("/one")).json() == 1


def test_schema_defaults_and_to_model() -> None:
    created = fastapi_app.UserCreate(email="e@example.com", name="E")
    user = created.to_model()
    assert isinstance(user, User) and user.id is None and user.bio is None
    assert str(user.balance) == "0.00" and user.public_id is not None
    assert schema(User) is fastapi_app.UserOut
    with pytest.raises(ValueError, match="nope"):
        schema(User, exclude=["nope"])


def test_schemas_leave_the_clock_and_the_database_their_fields() -> None:
    class Ticket(chakra.Model):
        __tablename__ = "fa_tickets"
        id = chakra.Field(chakra.Integer, primary_key=True)
        title = chakra.Field(chakra.String(40))
        state = chakra.Field(chakra.String(10), db_default="open")
        opened = chakra.Field(chakra.DateTime(timezone=True), auto_now_add=True)
        seen = chakra.Field(chakra.DateTime(timezone=True), auto_now=True)
        level = chakra.Field(chakra.Integer, choices=[1, 2, 3], default=1)

    create, update, read = schema(Ticket, create=True), schema(Ticket, partial=True), schema(Ticket)
    assert set(create.model_fields) == {"title", "state", "level"} and not create.model_fields["state"].is_required()
    assert set(update.model_fields) == {"title", "state", "level"}
    assert set(read.model_fields) == {"id", "title", "state", "opened", "seen", "level"}
    ticket = create(title="t").to_model()
    assert ticket.state is chakra.DB_DEFAULT
    assert create.model_json_schema()["properties"]["level"]["enum"] == [1, 2, 3]
    with pytest.raises(pydantic.ValidationError):
        create(title="t", level=7)
    assert create(title="t", state="closed").to_model().state == "closed"


def test_package_is_clean_under_mypy_strict() -> None:
    import chakra_fastapi

    package = os.path.dirname(chakra_fastapi.__file__)
    out = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", package],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr
