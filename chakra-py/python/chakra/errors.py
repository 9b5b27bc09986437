"""Chakra's exceptions: one hierarchy under :class:`chakra.Error`.

Every error raised by the Rust core arrives as one of these, with its context attached:
``code`` (the SQLSTATE, when the server reported the error), ``constraint`` (for
:class:`IntegrityError`), ``key`` (the configuration key, for :class:`ConfigError`) and
``kind`` (the core's error kind, e.g. ``"pool_timeout"``). The server's DETAIL line, which
may quote row values, is kept out of the message and available as ``detail``.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DataError",
    "DoesNotExist",
    "Error",
    "FieldError",
    "IntegrityError",
    "MultipleObjectsReturned",
    "OperationalError",
    "PoolTimeout",
    "ProgrammingError",
    "QueryTimeout",
    "SyncInAsyncWarning",
]


class Error(Exception):
    """Base class of every Chakra error."""

    kind: str | None = None
    """The core's error kind (``"integrity"``, ``"pool_timeout"``, …)."""
    code: str | None = None
    """The SQLSTATE the server reported (``"23505"``), if it reported the error."""
    constraint: str | None = None
    """The violated constraint's name (integrity errors)."""
    key: str | None = None
    """The configuration key at fault (configuration errors)."""
    detail: str | None = None
    """The server's DETAIL line; it may quote row values, so it is not in the message."""


class DoesNotExist(Error):
    """A query expected a row and found none. Each model has its own subclass,
    ``Model.DoesNotExist``."""


class MultipleObjectsReturned(Error):
    """A query expected one row and found several. Each model has its own subclass,
    ``Model.MultipleObjectsReturned``."""


class FieldError(Error):
    """A query names a field or lookup the model does not have, or gives a lookup a value
    it cannot use. Raised before any SQL is sent."""


class IntegrityError(Error):
    """A unique, foreign-key, not-null or check constraint was violated; ``constraint``
    names it."""


class PoolTimeout(Error):
    """No pooled connection became free within ``acquire_timeout``."""


class QueryTimeout(Error):
    """A statement ran past its deadline and was cancelled on the server."""


class OperationalError(Error):
    """The connection failed or the server could not complete the operation (connection
    lost, server shutting down, serialization failure, deadlock, a ``NOWAIT`` lock not
    available, out of resources); ``code`` tells which."""


class ProgrammingError(Error):
    """The server rejected the statement (syntax, unknown table, …) or the API was used in a
    way that cannot work (a finished transaction, a closed session)."""


class ConfigError(Error):
    """A configuration file, option or environment variable is invalid; ``key`` names it."""


class DataError(Error):
    """A value does not fit its field or parameter (wrong type, out of range, too long), or
    a column could not be decoded. Raised before the statement is sent when Chakra can tell."""


class SyncInAsyncWarning(RuntimeWarning):
    """A ``_sync`` method was called on a thread whose event loop is running: it blocks the
    loop until the database answers. Emitted in development mode (``python -X dev`` or
    ``CHAKRA_DEV=1``); use the ``await`` form instead."""
