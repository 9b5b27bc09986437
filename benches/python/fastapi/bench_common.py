"""What the four apps share: the database URL, the table, the pool size, and (for the three
peers) the response schema, typed like ``chakra_fastapi.schema(User)`` in
``examples/fastapi_app.py``. Chakra's app uses its own ``schema(User)``, as the example does."""

from __future__ import annotations

import datetime
import decimal
import os
import uuid

from pydantic import BaseModel, ConfigDict



def _plain_transport(url: str) -> str:
    """``url`` with ``sslmode=disable`` unless it names an sslmode: every app must use the
    same transport, and asyncpg (so SQLAlchemy and Tortoise too) defaults to ``prefer``,
    which is TLS wherever the server offers it (Debian's does)."""
    if "sslmode=" in url:
        return url
    return url + ("&" if "?" in url else "?") + "sslmode=disable"


DATABASE_URL = _plain_transport(os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"))
TABLE = "bench_fastapi_users"
POOL = 10


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    email: str
    name: str
    public_id: uuid.UUID
    balance: decimal.Decimal
    bio: str | None = None
    joined_at: datetime.datetime
