"""``lifespan``: the pool opened when the app starts and closed when it stops."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from chakra import Database, default_database

__all__ = ["Lifespan", "lifespan"]


class Lifespan:
    """An app's ``lifespan``: opens the database's pool at start-up — so its
    ``min_connections`` are connected before the first request, and a wrong URL stops the
    app instead of failing its first request — and closes it at shutdown.

    ``FastAPI(lifespan=chakra_fastapi.lifespan)`` uses the default database;
    ``Lifespan(database)`` (a :class:`chakra.Database` or a URL) another one, which
    :data:`~chakra_fastapi.SessionDep` then uses too.
    """

    def __init__(self, database: Database | str | None = None) -> None:
        self._database = Database(database) if isinstance(database, str) else database

    @property
    def database(self) -> Database:
        """The database whose pool this lifespan opens (resolved at start-up)."""
        return self._database if self._database is not None else default_database()

    @asynccontextmanager
    async def __call__(self, app: Any) -> AsyncIterator[None]:
        database = self.database
        # Always set (None: the default database), so `get_session` reads a plain
        # attribute instead of starlette raising and catching AttributeError per request.
        app.state.chakra_database = self._database
        # The first statement opens the pool, which connects `min_connections` first.
        await database.fetchval("SELECT 1")
        try:
            yield
        finally:
            database.close()


lifespan = Lifespan()
"""The default database's :class:`Lifespan`: ``FastAPI(lifespan=chakra_fastapi.lifespan)``."""
