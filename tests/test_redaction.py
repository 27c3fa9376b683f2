"""No password of a ``[database] url`` or ``[cluster] url`` reaches a log line or an error.

Property tests (hypothesis) of :func:`ircd.storage.redact_url` and
:func:`ircd.storage.redact_text` over every place libpq and redis-py take a
password from (userinfo, ``?password=`` in any case or encoding,
``sslpassword``, a key=value conninfo string), and the real server started
with such URLs: the one-line start-up error and the log never hold the secret.
"""

from __future__ import annotations

import subprocess
import sys
from urllib.parse import quote

from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from ircd.storage import redact_text, redact_url
from tests.engines import pg_url, postgres  # noqa: F401 - fixtures
from tests.support import ROOT, RawClient, ServerProcess, free_port

PASSWORDS = st.text(min_size=4, max_size=40).filter(lambda s: s.strip() == s and s)
"""Any text (the URL carries it percent-encoded); at least 4 characters so that it
cannot be a piece of the URL around it by chance (checked again with ``assume``)."""

RAW_PASSWORDS = st.text(st.characters(codec="ascii", exclude_characters="&\0\r\n \t'\\"),
                        min_size=4, max_size=40)
"""ASCII passwords written into a URL without encoding (a common mistake): ``@``,
``/``, ``?``, ``#``, ``:`` and ``=`` included; ``&`` would start another
parameter for libpq too."""

SHAPES = [
    "postgresql://me:{pw}@db.example:5432/chat",
    "postgres://me:{pw}@127.0.0.1/chat?sslmode=require",
    "postgresql://me@db.example:5432/chat?password={pw}",
    "postgresql://me@db.example/chat?sslmode=disable&password={pw}&application_name=x",
    "postgresql://me@db.example/chat?PASSWORD={pw}",
    "postgresql://me@db.example/chat?PassWord={pw}#frag",
    "postgresql://me@db.example/chat?pass%77ord={pw}",
    "postgresql://me@db.example/chat?sslpassword={pw}&sslmode=verify-full",
    "postgresql://me:{pw}@db.example/chat?password={pw}",
    "redis://:{pw}@127.0.0.1:6379/0",
    "redis://user:{pw}@127.0.0.1:6379/0",
    "rediss://127.0.0.1:6379/0?password={pw}",
    "mysql://me:{pw}@localhost/chat",
]


def _check(url: str, pw: str, shown: str, skeleton: str) -> None:
    """``shown`` holds neither ``pw`` nor its encoding, unless the URL around it does."""
    assume(pw not in skeleton and quote(pw, safe="") not in skeleton)
    assert pw not in shown, (url, shown)
    assert quote(pw, safe="") not in shown, (url, shown)
    assert "***" in shown


@settings(max_examples=300, deadline=None)
@given(PASSWORDS, st.sampled_from(SHAPES))
@example("hunter2", "postgresql://me@db.example/chat?password={pw}")
@example("00#=", "postgresql://me:{pw}@db.example/chat?password={pw}")  # (found by hypothesis)
def test_no_encoded_password_survives_redact_url(pw, shape):
    url = shape.format(pw=quote(pw, safe=""))
    _check(url, pw, redact_url(url), shape.format(pw=""))
    _check(url, quote(pw, safe=""), redact_url(url), shape.format(pw=""))


@settings(max_examples=300, deadline=None)
@given(RAW_PASSWORDS, st.sampled_from(SHAPES))
@example("p@ss/w?rd#x", "postgresql://me:{pw}@db.example:5432/chat")
@example("a:b@c", "redis://:{pw}@127.0.0.1:6379/0")
def test_no_unencoded_password_survives_redact_url(pw, shape):
    url = shape.format(pw=pw)
    _check(url, pw, redact_url(url), shape.format(pw=""))


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=4, max_size=40).filter(lambda s: "\0" not in s),
       st.sampled_from(["host=db port=5432 password={pw} dbname=chat",
                        "host=db password = {pw}",
                        "PASSWORD={pw} host=db",
                        "host=db sslpassword={pw} sslmode=verify-full"]))
def test_no_password_survives_in_a_key_value_conninfo(pw, shape):
    quoted = "'" + pw.replace("\\", "\\\\").replace("'", "\\'") + "'"
    url = shape.format(pw=quoted)
    shown = redact_url(url)
    assume(pw not in shape.format(pw="''"))
    assert pw not in shown, (url, shown)


@settings(max_examples=200, deadline=None)
@given(PASSWORDS, st.sampled_from(SHAPES))
def test_redact_text_removes_the_password_from_a_driver_message(pw, shape):
    url = shape.format(pw=quote(pw, safe=""))
    for form in (pw, quote(pw, safe="")):
        message = f'invalid percent-encoded token: "{form}" in {url}'
        skeleton = f'invalid percent-encoded token: "" in {shape.format(pw="")}'
        assume(pw not in skeleton and quote(pw, safe="") not in skeleton)
        assert form not in redact_text(message, url)


def test_redaction_keeps_what_is_not_secret():
    assert redact_url("postgresql://me:hunter2@h:5/db?sslmode=require&passfile=/etc/pgpass") == (
        "postgresql://me:***@h:5/db?sslmode=require&passfile=/etc/pgpass")
    assert redact_url("postgresql://me@h/db?password=SECRET&sslmode=disable") == (
        "postgresql://me@h/db?password=***&sslmode=disable")
    assert redact_url("redis://:pw@127.0.0.1:6379/0") == "redis://:***@127.0.0.1:6379/0"
    assert redact_url("postgresql://me@h/db") == "postgresql://me@h/db"
    assert redact_url("host=h password='a b' dbname=x") == "host=h password=*** dbname=x"


# -- the real server ---------------------------------------------------------------------------

def _start(tmp_path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ircd", str(free_port()), "--data-dir",
                           str(tmp_path / "data"), "--log-level", "debug", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def test_unreachable_database_with_a_password_parameter_never_shows_it(tmp_path):
    port = free_port()
    for url in (f"postgresql://me@127.0.0.1:{port}/chat?password=SECRETpw1",
                f"postgresql://me@127.0.0.1:{port}/chat?sslmode=disable&PASSWORD=SECRETpw1",
                f"postgresql://me:SECRETpw1@127.0.0.1:{port}/chat?password=SECRETpw1"):
        done = _start(tmp_path, "--database", url)
        assert done.returncode == 1, done.stderr
        lines = done.stderr.strip().splitlines()
        assert lines[-1].startswith("chatserver: cannot use the database postgresql://me"), lines
        assert "password=***" in lines[-1].lower() or ":***@" in lines[-1], lines
        assert "SECRET" not in done.stderr + done.stdout, done.stderr


def test_malformed_urls_with_passwords_are_refused_without_showing_them(tmp_path):
    for args, key in ((["--database", "postgresql://me@h/db#x?password=SECRETpw1"], "database.url"),
                      (["--database", "host=db password=SECRETpw1"], "database.url"),
                      (["--database", "postgresql://me@127.0.0.1/db",
                        "--cluster", "redis://:SECRETpw1@127.0.0.1:99999/0"], "cluster.url"),
                      (["--database", "postgresql://me@127.0.0.1/db",
                        "--cluster", "redis://127.0.0.1/zz?password=SECRETpw1"], "cluster.url")):
        done = _start(tmp_path, *args)
        assert done.returncode == 2, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1 and key in done.stderr, done.stderr
        assert "SECRET" not in done.stderr + done.stdout, done.stderr


def test_a_password_parameter_never_reaches_the_log_of_a_running_server(tmp_path, pg_url):  # noqa: F811
    srv = ServerProcess(tmp_path / "data",
                        extra_args=["--database", pg_url + "?password=SECRETpw1",
                                    "--log-level", "debug"]).start()
    try:
        c = RawClient(srv.port)
        c.register("alice", "apw")  # an account: the database is in use
        c.close()
    finally:
        assert srv.stop() == 0
    log = srv.log()
    assert f"database: PostgreSQL {pg_url}?password=***" in log, log[-2000:]
    assert "SECRET" not in log
