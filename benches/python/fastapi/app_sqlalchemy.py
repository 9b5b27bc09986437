"""SQLAlchemy 2 async ORM (asyncpg driver): a session per request committed when the endpoint
returns (like ``SessionDep``), ``session.get``, 404 when missing, ``response_model``."""

from __future__ import annotations

import datetime
import decimal
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

import sqlalchemy as sa
from fastapi import Depends, FastAPI, HTTPException
from sqlalchemy import orm
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from bench_common import DATABASE_URL, POOL, TABLE, UserOut


class Base(orm.DeclarativeBase):
    pass


class User(Base):
    __tablename__ = TABLE
    id: orm.Mapped[int] = orm.mapped_column(sa.Integer, primary_key=True)
    email: orm.Mapped[str] = orm.mapped_column(sa.String(200), unique=True)
    name: orm.Mapped[str] = orm.mapped_column(sa.String(100))
    public_id: orm.Mapped[uuid.UUID] = orm.mapped_column(sa.Uuid)
    balance: orm.Mapped[decimal.Decimal] = orm.mapped_column(sa.Numeric(10, 2))
    bio: orm.Mapped[str | None] = orm.mapped_column(sa.Text, nullable=True)
    joined_at: orm.Mapped[datetime.datetime] = orm.mapped_column(sa.DateTime(timezone=True))


engine = create_async_engine(
    # SQLAlchemy's asyncpg dialect calls the TLS setting ``ssl``.
    "postgresql+asyncpg://" + DATABASE_URL.split("://", 1)[1].replace("sslmode=", "ssl="),
    pool_size=POOL,
    max_overflow=0,
)
sessions = async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    conns = [await engine.connect() for _ in range(POOL)]  # warm the pool, like chakra's lifespan
    for conn in conns:
        await conn.close()
    try:
        yield
    finally:
        await engine.dispose()


async def get_session() -> AsyncIterator[AsyncSession]:
    async with sessions() as session:
        yield session
        await session.commit()


SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]

app = FastAPI(lifespan=lifespan)


@app.get("/users/{user_id}", response_model=UserOut)
async def get_user(user_id: int, session: SessionDep) -> User:
    user = await session.get(User, user_id)
    if user is None:
        raise HTTPException(404, "User not found")
    return user
