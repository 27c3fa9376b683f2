"""Where the server keeps its data: SQLite in ``server.data_dir`` (the default) or PostgreSQL.

The stores and their interfaces live with their concern (accounts in
:mod:`ircd.accounts`, history in :mod:`ircd.history`, server bans in
:mod:`ircd.serverbans`, registered channels in :mod:`ircd.chanstore`), each
with its SQLite backend. The PostgreSQL backends of all four, the connection
pool and the migrations are in :mod:`ircd.storage.postgres` and
:mod:`ircd.storage.migrations`; this module holds only what start-up needs
without importing a driver: checking and redacting a ``[database] url``.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

SCHEMES = ("postgresql", "postgres")
"""URL schemes accepted for ``[database] url`` / ``--database`` (libpq's two spellings)."""


class BadDatabaseURL(ValueError):
    """A ``[database] url`` that is not ``postgresql://USER[:PW]@HOST[:PORT]/DBNAME``."""


def check_database_url(url: str) -> None:
    """Raise :class:`BadDatabaseURL` (a one-line reason) unless ``url`` is a usable
    ``postgresql://USER[:PW]@HOST[:PORT]/DBNAME`` (``postgres://`` too; query
    parameters such as ``?sslmode=require`` are passed to libpq). The empty
    string means SQLite and is accepted."""
    if not url:
        return
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise BadDatabaseURL(f"not a URL: {exc}") from None
    if parts.scheme not in SCHEMES:
        raise BadDatabaseURL("must start with postgresql://")
    if not parts.hostname:
        raise BadDatabaseURL("no host (postgresql://USER[:PW]@HOST:PORT/DBNAME)")
    if port is not None and not 0 < port < 65536:
        raise BadDatabaseURL(f"port {port} out of range")
    dbname = unquote(parts.path.lstrip("/"))
    if not dbname or "/" in dbname:
        raise BadDatabaseURL("no database name (postgresql://USER[:PW]@HOST:PORT/DBNAME)")
    if parts.fragment:
        raise BadDatabaseURL("a URL fragment (#...) is not allowed")


def redact_url(url: str) -> str:
    """``url`` with its password replaced by ``***``, for logs and error messages."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return "<unparsable URL>"
    if password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rsplit("@", 1)[1]
    return parts._replace(netloc=f"{user}:***@{host}").geturl()
