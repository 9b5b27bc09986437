"""The ceiling: the same route and response_model with no database (a fixed user whose id is
the one asked for). Its req/s is what FastAPI + uvicorn + pydantic cost on their own."""

from __future__ import annotations

import datetime
import decimal
import uuid

from fastapi import FastAPI

from bench_common import UserOut

app = FastAPI()
_USER = {
    "email": "user1@example.com",
    "name": "User 1",
    "public_id": uuid.UUID("c4ca4238-a0b9-2382-0dcc-509a6f75849b"),
    "balance": decimal.Decimal("0.01"),
    "bio": "Bio of user 1",
    "joined_at": datetime.datetime(2024, 1, 1, 0, 1, tzinfo=datetime.timezone.utc),
}


@app.get("/users/{user_id}", response_model=UserOut)
async def get_user(user_id: int) -> dict:
    return {"id": user_id, **_USER}
