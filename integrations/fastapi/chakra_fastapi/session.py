"""``SessionDep``: one :class:`chakra.Session` per request."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request

from chakra import Database, Session

__all__ = ["SessionDep", "get_session"]


async def get_session(request: Request) -> AsyncIterator[Session]:
    """A session for one request: committed when the endpoint returns, rolled back when it
    raises, and its connection given back to the pool in both cases.

    The database is the one the app's :class:`~chakra_fastapi.Lifespan` was given, else
    Chakra's default database. Use it through :data:`SessionDep`, which ends the session
    as soon as the endpoint returns — before the response is sent, so a failed commit is
    an error response and never a success the client saw for a write that was lost.
    """
    database: Database | None = getattr(request.app.state, "chakra_database", None)
    async with Session(database) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session, scope="function")]
"""``session: SessionDep`` in an endpoint's parameters: the request's session (see
:func:`get_session`)."""
