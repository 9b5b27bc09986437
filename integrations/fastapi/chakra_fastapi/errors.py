"""Chakra's errors as HTTP answers: ``DoesNotExist`` → 404, ``IntegrityError`` → 409
(naming the constraint), ``PoolTimeout`` → 503 with ``Retry-After``, ``QueryTimeout`` → 504."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

from chakra import DoesNotExist, IntegrityError, PoolTimeout, QueryTimeout

__all__ = ["RETRY_AFTER_SECONDS", "add_exception_handlers", "exception_handlers"]

RETRY_AFTER_SECONDS = 1
"""The ``Retry-After`` a 503 (no free pooled connection) asks clients to wait."""


async def _not_found(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(exc) or "not found"}, status_code=404)


async def _conflict(request: Request, exc: Exception) -> JSONResponse:
    constraint = getattr(exc, "constraint", None)
    # The message, not the server's DETAIL line: DETAIL quotes row values.
    detail = f"conflicts with constraint {constraint!r}" if constraint else "conflicts with existing data"
    return JSONResponse({"detail": detail, "constraint": constraint}, status_code=409)


async def _unavailable(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse(
        {"detail": "the database is busy: no connection became free in time"},
        status_code=503,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


async def _gateway_timeout(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": "the database query timed out"}, status_code=504)


exception_handlers: dict[Any, Callable[[Request, Exception], Awaitable[JSONResponse]]] = {
    DoesNotExist: _not_found,
    IntegrityError: _conflict,
    PoolTimeout: _unavailable,
    QueryTimeout: _gateway_timeout,
}
"""The handlers by exception class, for ``FastAPI(exception_handlers=...)``."""


def add_exception_handlers(app: Any) -> None:
    """Registers :data:`exception_handlers` on ``app`` (a FastAPI or Starlette app)."""
    for exc_class, handler in exception_handlers.items():
        app.add_exception_handler(exc_class, handler)
