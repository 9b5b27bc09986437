"""Tortoise ORM: ``User.get(id=...)`` (DoesNotExist -> 404), ``response_model``.
Tortoise has no unit of work, so there is no session dependency."""

from __future__ import annotations

import urllib.parse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from tortoise import fields, models
from tortoise.contrib.fastapi import RegisterTortoise
from tortoise.exceptions import DoesNotExist

from bench_common import DATABASE_URL, POOL, TABLE, UserOut


class User(models.Model):
    id = fields.IntField(primary_key=True)
    email = fields.CharField(max_length=200, unique=True)
    name = fields.CharField(max_length=100)
    public_id = fields.UUIDField()
    balance = fields.DecimalField(max_digits=10, decimal_places=2)
    bio = fields.TextField(null=True)
    joined_at = fields.DatetimeField()

    class Meta:
        table = TABLE
        app = "bench"


def _credentials(url: str) -> dict:
    u = urllib.parse.urlsplit(url)
    return {
        "host": u.hostname or "127.0.0.1",
        "port": u.port or 5432,
        "user": urllib.parse.unquote(u.username or "postgres"),
        "password": urllib.parse.unquote(u.password or ""),
        "database": (u.path or "/").lstrip("/") or "postgres",
        "minsize": POOL,
        "maxsize": POOL,
        "ssl": urllib.parse.parse_qs(u.query).get("sslmode", ["disable"])[0],
    }


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    # RegisterTortoise: Tortoise's FastAPI helper (its global context, so request tasks see
    # the connections opened in the lifespan task)
    config = {
        "connections": {"default": {"engine": "tortoise.backends.asyncpg", "credentials": _credentials(DATABASE_URL)}},
        "apps": {"bench": {"models": [__name__], "default_connection": "default"}},
        "use_tz": True,
        "timezone": "UTC",
    }
    async with RegisterTortoise(app, config=config, generate_schemas=False):
        await User.filter(id=1).first()
        yield


app = FastAPI(lifespan=lifespan)


@app.exception_handler(DoesNotExist)
async def _not_found(request: Request, exc: DoesNotExist) -> JSONResponse:
    return JSONResponse({"detail": "User not found"}, status_code=404)


@app.get("/users/{user_id}", response_model=UserOut)
async def get_user(user_id: int) -> User:
    return await User.get(id=user_id)
