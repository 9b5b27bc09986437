"""Chakra: the example app's ``GET /users/{user_id}`` as written in examples/fastapi_app.py
(``SessionDep``, ``lifespan``, exception handlers, ``response_model=schema(User)``)."""

from __future__ import annotations

import datetime
import decimal
import uuid

from fastapi import FastAPI

import chakra
from bench_common import DATABASE_URL, POOL, TABLE
from chakra import UUID, DateTime, Field, Integer, Model, Numeric, String, Text
from chakra_fastapi import SessionDep, add_exception_handlers, lifespan, schema


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


class User(Model):
    __tablename__ = TABLE
    id = Field(Integer, primary_key=True)
    email = Field(String(200), unique=True)
    name = Field(String(100))
    public_id = Field(UUID, default=uuid.uuid4)
    balance = Field(Numeric(10, 2), default=decimal.Decimal("0.00"))
    bio = Field(Text, nullable=True)
    joined_at = Field(DateTime(timezone=True), default=_now)


chakra.configure(url=DATABASE_URL, min_connections=POOL, max_connections=POOL)
UserOut = schema(User)

app = FastAPI(lifespan=lifespan)
add_exception_handlers(app)


@app.get("/users/{user_id}", response_model=UserOut)
async def get_user(user_id: int, session: SessionDep) -> User:
    return await User.objects.get(id=user_id)
