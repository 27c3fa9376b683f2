"""The storage wing (ircd/storage/): the only place that knows a database.

The domain modules (accounts, history, server bans, registered channels)
define the interfaces and take a backend; every backend and the choice
between them live in ``ircd/storage/`` (issue 20, item 5).
"""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest

from ircd.accounts import AccountStore
from ircd.history import HistoryStore
from tests.support import ROOT

DRIVERS = {"sqlite3", "psycopg", "psycopg_pool"}
DOMAIN = ["accounts.py", "history.py", "serverbans.py", "chanstore.py", "chanreg.py"]


def _imports(path) -> set[str]:
    """Every module ``path`` imports (top level or inside a function), dotted."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def test_only_the_storage_wing_imports_a_database_driver():
    ircd = ROOT / "ircd"
    importers = sorted(
        str(path.relative_to(ircd)) for path in ircd.rglob("*.py")
        if {name.split(".")[0] for name in _imports(path)} & DRIVERS)
    assert importers, "no module imports a driver: the check is looking in the wrong place"
    assert all(p.startswith("storage/") for p in importers), importers


def test_domain_modules_never_reach_into_the_storage_wing():
    for name in DOMAIN:
        imported = _imports(ROOT / "ircd" / name)
        assert not any(m == "ircd.storage" or m.startswith("ircd.storage.") for m in imported), (
            name, sorted(imported))


def test_sqlite_start_up_does_not_import_psycopg(tmp_path):
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "import ircd.cli\n"
        "from ircd.config import Config\n"
        "from ircd.storage.stores import open_stores\n"
        f"stores = open_stores(Config(), Path({str(tmp_path)!r}))\n"
        "print(type(stores.accounts.rows).__name__, stores.database)\n"
        "stores.close()\n"
        "print(sorted(m for m in sys.modules if m.startswith('psycopg')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=60, check=True).stdout.split("\n")
    assert out[:2] == ["SQLiteAccountRows None", "[]"], out
    assert (tmp_path / "chatserver.sqlite3").exists()


@pytest.mark.parametrize("make", [lambda p: AccountStore(p), lambda p: HistoryStore(p)])
def test_a_store_given_a_path_instead_of_a_backend_says_so(tmp_path, make):
    with pytest.raises(TypeError, match="backend, not a path"):
        make(tmp_path / "db")
    with pytest.raises(TypeError, match="backend, not a path"):
        make(str(tmp_path / "db"))
    assert not (tmp_path / "db").exists()


def test_a_history_table_that_cannot_be_opened_is_one_startup_error(tmp_path):
    """A damaged history table stops start-up with one line naming the data
    directory (``StartupError``, exit code 1), like the other stores, and the
    accounts store opened before it is closed again."""
    import sqlite3

    from ircd.config import Config
    from ircd.storage.stores import DB_FILE, StartupError, open_stores

    with sqlite3.connect(tmp_path / DB_FILE) as db:
        db.execute("CREATE TABLE history (x)")   # no target, t...: the index cannot be made
    with pytest.raises(StartupError, match=f"cannot read the history in {tmp_path}"):
        open_stores(Config(), tmp_path)
    with sqlite3.connect(tmp_path / DB_FILE) as db:   # not left locked or half open
        assert db.execute("SELECT count(*) FROM accounts").fetchone() == (0,)
