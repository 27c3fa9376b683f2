"""The storage wing: every backend of every store, and choosing one at start.

The domain modules define what they need and never open a database or
import a driver: :class:`ircd.accounts.AccountRows`,
:class:`ircd.history.HistoryDisk`, :class:`ircd.serverbans.ServerBanStore`
and :class:`ircd.chanstore.ChannelStore`. Their backends live here, one
module per backend:

- :mod:`ircd.storage.sqlite`: the four SQLite backends in one file in
  ``server.data_dir`` (the default);
- :mod:`ircd.storage.postgres`: the four PostgreSQL backends, the
  connection pool and the migration runner; :mod:`ircd.storage.migrations`:
  the PostgreSQL schema, versioned;
- :mod:`ircd.storage.stores`: :func:`~ircd.storage.stores.open_stores`,
  which picks the backend from ``[database] url`` and opens the stores.

This module holds only what the configuration needs without importing a
driver: checking and redacting a ``[database] url`` (also used for the
cluster's Redis URL).
"""

from __future__ import annotations

import re
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


_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://")
# A query parameter whose (percent-decoded) name ends in "password" (libpq's
# ``password`` and ``sslpassword``, redis-py's ``password``); its value runs to
# the next ``&name=`` (so an unencoded ``&`` inside it is hidden too) or the end.
_QUERY_PARAM = re.compile(r"([?&#;])([^=&?#;]+)=(.*?)(?=&[A-Za-z_%][A-Za-z0-9_%]*=|\Z)", re.S)
# ``password = value`` in a libpq key=value conninfo string; the value is a
# word or a single-quoted string with backslash escapes (libpq, "Connection Strings").
_CONNINFO_PASSWORD = re.compile(
    r"""(?i)(\b\w*password\s*=\s*)('(?:\\.|[^'\\])*'?|\S*)""", re.S)
REDACTED = "***"
"""What a password is replaced with in logs and error messages."""


def _is_password_key(key: str) -> bool:
    return unquote(key).strip().lower().endswith("password")


def redact_url(url: str) -> str:
    """``url`` (str) with every password in it replaced by ``***``, for logs and error messages.

    Covers what libpq (PostgreSQL, "Connection Strings") and redis-py accept:
    the userinfo password (``scheme://USER:PW@HOST``, ``redis://:PW@HOST``;
    everything between the first ``:`` and the last ``@`` of the part after
    ``scheme://``, so an unencoded ``@``, ``/``, ``?`` or ``#`` in the
    password is hidden too), every query parameter whose percent-decoded name
    ends in ``password`` in any case (``?password=``, ``?PassWord=``,
    ``?pass%77ord=``, ``?sslpassword=``), and ``password=...`` in a
    key=value conninfo string (``host=h password='a b'``). A ``passfile`` is
    a path and is shown. Never raises; what is not a URL is treated the same way.
    """
    m = _SCHEME.match(url)
    scheme, rest = (m.group(0), url[m.end():]) if m else ("", url)

    def param(p: re.Match[str]) -> str:
        if _is_password_key(p.group(2)):
            return f"{p.group(1)}{p.group(2)}={REDACTED}"
        return p.group(0)

    if m:  # the query first: a password in it may hold an "@"
        rest = _QUERY_PARAM.sub(param, rest)
    head = ""
    at = rest.rfind("@")
    if at >= 0:
        colon = rest.find(":", 0, at)
        # (Without a scheme, only "user:pw@host" is taken for userinfo, not "a=b:c@d".)
        if colon >= 0 and (m or not any(c in rest[:colon] for c in "= ")):
            head, rest = f"{rest[:colon]}:{REDACTED}@", rest[at + 1:]
    if m:
        return scheme + head + rest
    return head + _CONNINFO_PASSWORD.sub(lambda p: p.group(1) + REDACTED, rest)


def _secrets_of(url: str) -> set[str]:
    """The password strings in ``url`` (raw and percent-decoded), as :func:`redact_url` finds them."""
    found: set[str] = set()
    m = _SCHEME.match(url)
    rest = url[m.end():] if m else url
    at = rest.rfind("@")
    if at >= 0 and (colon := rest.find(":", 0, at)) >= 0:
        found.add(rest[colon + 1:at])
    for p in _QUERY_PARAM.finditer(rest):
        if _is_password_key(p.group(2)):
            value = p.group(3)  # (as far as it might go: to a "#" or "&" too)
            found |= {value, value.split("#")[0], value.split("&")[0]}
    for p in _CONNINFO_PASSWORD.finditer(rest):
        value = p.group(2)
        found.add(value)
        if value.startswith("'"):
            found.add(re.sub(r"\\(.)", r"\1", value[1:].removesuffix("'")))
    found |= {unquote(s) for s in found}
    return {s for s in found if len(s) >= MIN_SCRUBBED}


MIN_SCRUBBED = 3
"""Shortest password :func:`redact_text` removes from a message (a shorter one would
mangle ordinary words; such a password is weak anyway)."""


def redact_text(text: str, url: str) -> str:
    """``text`` (an error message from a driver about ``url``) without the passwords of ``url``.

    Each password of ``url`` (as :func:`redact_url` finds them, raw and
    percent-decoded, at least :data:`MIN_SCRUBBED` characters) is replaced by
    ``***`` wherever it appears: libpq quotes pieces of a malformed URL in its
    messages (e.g. ``invalid percent-encoded token``). Never raises.
    """
    for secret in sorted(_secrets_of(url), key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text
