"""Chakra inside FastAPI: a session per request, the pool's lifespan, HTTP answers for
Chakra's errors, and pydantic schemas generated from models.

::

    from fastapi import FastAPI
    from chakra_fastapi import SessionDep, lifespan, add_exception_handlers, schema

    app = FastAPI(lifespan=lifespan)
    add_exception_handlers(app)
    UserOut = schema(User)
    UserIn = schema(User, create=True)

    @app.post("/users", response_model=UserOut, status_code=201)
    async def create_user(body: UserIn, session: SessionDep):
        user = body.to_model()
        session.add(user)
        await session.flush()
        return user
"""

from __future__ import annotations

from .errors import add_exception_handlers, exception_handlers
from .lifespan import Lifespan, lifespan
from .schema import ModelSchema, schema
from .session import SessionDep, get_session

__all__ = [
    "Lifespan",
    "ModelSchema",
    "SessionDep",
    "add_exception_handlers",
    "exception_handlers",
    "get_session",
    "lifespan",
    "schema",
]
