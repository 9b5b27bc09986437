"""Raw asyncpg: one ``fetchrow`` on the pool, 404 when missing, ``response_model``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from fastapi import FastAPI, HTTPException

from bench_common import DATABASE_URL, POOL, TABLE, UserOut

SQL = f"SELECT id, email, name, public_id, balance, bio, joined_at FROM {TABLE} WHERE id = $1"
state: dict[str, asyncpg.Pool] = {}


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    state["pool"] = await asyncpg.create_pool(DATABASE_URL, min_size=POOL, max_size=POOL)
    try:
        yield
    finally:
        await state.pop("pool").close()


app = FastAPI(lifespan=lifespan)


@app.get("/users/{user_id}", response_model=UserOut)
async def get_user(user_id: int) -> dict:
    row = await state["pool"].fetchrow(SQL, user_id)
    if row is None:
        raise HTTPException(404, "User not found")
    return dict(row)
