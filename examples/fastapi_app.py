"""A small CRUD API of users and their posts on FastAPI, with chakra_fastapi:

* ``SessionDep`` — a session per request, committed when the endpoint returns and rolled
  back when it raises;
* ``lifespan`` — the pool opened (``min_connections`` warm) at start-up, closed at shutdown;
* ``add_exception_handlers`` — ``DoesNotExist`` → 404, ``IntegrityError`` → 409,
  ``PoolTimeout`` → 503, ``QueryTimeout`` → 504;
* ``schema(Model)`` — pydantic schemas for responses and request bodies.

Run it (``DATABASE_URL`` or ``chakra.toml`` names the database)::

    uvicorn examples.fastapi_app:app
"""

from __future__ import annotations

import datetime
import decimal
import uuid
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import FastAPI, Query
from fastapi.responses import Response, StreamingResponse

from chakra import UUID, Boolean, DateTime, Field, Integer, Model, Numeric, String, Text
from chakra_fastapi import SessionDep, add_exception_handlers, lifespan, schema


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


class User(Model):
    __tablename__ = "app_users"
    id = Field(Integer, primary_key=True)
    email = Field(String(200), unique=True)
    name = Field(String(100))
    public_id = Field(UUID, default=uuid.uuid4)
    balance = Field(Numeric(10, 2), default=decimal.Decimal("0.00"))
    bio = Field(Text, nullable=True)
    joined_at = Field(DateTime(timezone=True), default=_now)


class Post(Model):
    __tablename__ = "app_posts"
    id = Field(Integer, primary_key=True)
    author_id = Field(Integer, index=True)
    title = Field(String(200))
    body = Field(Text, default="")
    published = Field(Boolean, default=False)
    created_at = Field(DateTime(timezone=True), default=_now)


UserOut = schema(User)
UserCreate = schema(User, create=True)
UserUpdate = schema(User, partial=True)
PostOut = schema(Post)
PostCreate = schema(Post, create=True, exclude=["author_id"])

Limit = Annotated[int, Query(ge=1, le=100)]
Offset = Annotated[int, Query(ge=0)]

app = FastAPI(title="Chakra users and posts", lifespan=lifespan)
add_exception_handlers(app)


@app.post("/users", response_model=UserOut, status_code=201)
async def create_user(body: UserCreate, session: SessionDep) -> User:
    user = body.to_model()
    session.add(user)
    await session.flush()
    return user


@app.get("/users", response_model=list[UserOut])
async def list_users(session: SessionDep, limit: Limit = 20, offset: Offset = 0) -> list[User]:
    return await User.objects.order_by("id").offset(offset).limit(limit).all()


@app.get("/users.ndjson")
async def stream_users() -> StreamingResponse:
    """Every user, one JSON object per line, sent while the rows arrive."""

    async def lines() -> AsyncIterator[bytes]:
        async for user in User.objects.order_by("id").stream():
            yield UserOut.model_validate(user).model_dump_json().encode() + b"\n"

    return StreamingResponse(lines(), media_type="application/x-ndjson")


@app.get("/users/{user_id}", response_model=UserOut)
async def get_user(user_id: int, session: SessionDep) -> User:
    return await User.objects.get(id=user_id)


@app.patch("/users/{user_id}", response_model=UserOut)
async def update_user(user_id: int, body: UserUpdate, session: SessionDep) -> User:
    user = body.apply(await User.objects.get(id=user_id))
    await session.flush()
    return user


@app.delete("/users/{user_id}", status_code=204)
async def delete_user(user_id: int, session: SessionDep) -> Response:
    await session.delete(await User.objects.get(id=user_id))
    await Post.objects.filter(author_id=user_id).delete()
    return Response(status_code=204)


@app.post("/users/{user_id}/posts", response_model=PostOut, status_code=201)
async def create_post(user_id: int, body: PostCreate, session: SessionDep) -> Post:
    await User.objects.get(id=user_id)
    post = body.to_model()
    post.author_id = user_id
    session.add(post)
    await session.flush()
    return post


@app.get("/users/{user_id}/posts", response_model=list[PostOut])
async def list_posts(user_id: int, session: SessionDep, limit: Limit = 20, offset: Offset = 0) -> list[Post]:
    await User.objects.get(id=user_id)
    return await Post.objects.filter(author_id=user_id).order_by("id").offset(offset).limit(limit).all()


@app.get("/posts/{post_id}", response_model=PostOut)
async def get_post(post_id: int, session: SessionDep) -> Post:
    return await Post.objects.get(id=post_id)
