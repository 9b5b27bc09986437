"""Diagnostic, not one of the four: app_chakra.py without ``SessionDep`` (the query runs on
the pool directly, no per-request session). Shows what the session costs per request."""

from __future__ import annotations

from app_chakra import User, UserOut, add_exception_handlers, lifespan
from fastapi import FastAPI

app = FastAPI(lifespan=lifespan)
add_exception_handlers(app)


@app.get("/users/{user_id}", response_model=UserOut)
async def get_user(user_id: int) -> User:
    return await User.objects.get(id=user_id)
