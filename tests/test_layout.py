"""The layout the architecture promises (docs/architecture.md), checked on the source.

- No handler module imports another: a module in ``ircd/commands/`` imports
  from that package only ``ircd.commands.registry`` (``table.py``, which lists
  the handlers, and the package's ``__init__.py`` excepted); the world
  operations several handlers share live in ``ircd/ops/``, which never
  imports ``ircd.commands``.
- One command table: every handler is a row of ``ircd/commands/table.py``, each
  command once, and the cluster's set of logged commands is derived from it.

The import graph is read from the source with :mod:`ast` (every ``import``,
also inside functions and under ``TYPE_CHECKING``), so a lazy import cannot
hide an edge.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import ircd.commands
from ircd.cluster.log import REPLICATED
from ircd.commands.registry import COMMANDS, Effect
from ircd.commands.table import TABLE

IRCD = Path(ircd.commands.__file__).resolve().parent.parent
COMMANDS_DIR = IRCD / "commands"
NOT_HANDLERS = {"__init__", "registry", "table"}


def module_name(path: Path) -> str:
    parts = path.relative_to(IRCD.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(name: str) -> bool:
    """True if ``name`` (``ircd.x.y``) is a module or package under ``ircd/``."""
    path = IRCD.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imports_of(path: Path) -> set[str]:
    """Every ``ircd`` module ``path`` imports; ``from pkg import name`` counts as an
    import of ``pkg.name`` when that is a module, otherwise of ``pkg``."""
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join([*base, node.module] if node.module else base)
            else:
                source = node.module or ""
            for alias in node.names:
                sub = f"{source}.{alias.name}"
                found.add(sub if is_module(sub) else source)
    return {name for name in found if name == "ircd" or name.startswith("ircd.")}


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports_of(p) for p in IRCD.rglob("*.py")}


def test_no_handler_module_imports_another_or_the_commands_package():
    edges = graph()
    handler_modules = sorted(module_name(p) for p in COMMANDS_DIR.glob("*.py")
                             if p.stem not in NOT_HANDLERS)
    assert "ircd.commands.channels" in handler_modules  # (the walk sees the files)
    bad = {}
    for name in handler_modules:
        into_commands = {m for m in edges[name]
                         if m == "ircd.commands" or m.startswith("ircd.commands.")}
        if into_commands - {"ircd.commands.registry"}:
            bad[name] = sorted(into_commands - {"ircd.commands.registry"})
    assert bad == {}
    # The shared operations are where the handlers get them from.
    assert "ircd.ops.login" in edges["ircd.commands.sasl"]
    assert "ircd.ops.membership" in edges["ircd.commands.channels"]


def test_world_operations_never_import_the_commands():
    edges = graph()
    ops = sorted(name for name in edges if name == "ircd.ops" or name.startswith("ircd.ops."))
    assert "ircd.ops.welcome" in ops
    bad = {name: sorted(m for m in edges[name] if m.startswith("ircd.commands"))
           for name in ops}
    assert {name: found for name, found in bad.items() if found} == {}


def test_every_handler_is_one_row_of_the_table_and_every_command_is_declared_once():
    names = [spec.name for spec in TABLE]
    assert len(names) == len(set(names))
    assert all(name == name.upper() for name in names)
    assert set(COMMANDS) == set(names)
    in_table = {spec.handler for spec in TABLE}
    defined = set()
    for path in COMMANDS_DIR.glob("*.py"):
        if path.stem in NOT_HANDLERS:
            continue
        module = getattr(__import__(module_name(path)).commands, path.stem)
        defined |= {fn for name, fn in inspect.getmembers(module, inspect.isfunction)
                    if name.startswith("handle_") and fn.__module__ == module.__name__}
    assert defined == in_table


def test_the_logged_commands_of_a_cluster_are_derived_from_the_table_and_unchanged():
    logged = {spec.name for spec in TABLE if spec.effect is not Effect.LOCAL}
    assert logged == REPLICATED
    assert logged == {  # the set ircd/cluster/log.py declared by hand before the table
        "PRIVMSG", "NOTICE", "TAGMSG", "JOIN", "PART", "NICK", "TOPIC", "MODE", "KICK",
        "INVITE", "AWAY", "SETNAME", "QUIT", "KILL", "WALLOPS", "KLINE", "UNKLINE", "DLINE",
        "UNDLINE", "CS", "CHANSERV",
    }
    assert {spec.name for spec in TABLE if spec.effect is Effect.ROUTED} == {
        "PRIVMSG", "NOTICE", "TAGMSG"}


def test_oper_privileges_are_declared_in_the_table():
    assert {spec.name: spec.privilege for spec in TABLE if spec.privilege} == {
        "KILL": "oper", "WALLOPS": "oper", "KLINE": "oper", "DLINE": "oper",
        "UNKLINE": "oper", "UNDLINE": "oper", "REHASH": "admin", "DIE": "admin",
    }


def test_no_module_level_counters_ids_come_from_the_server():
    """Identifiers (message ids, batch and label reference tags) are made by the
    server's own :class:`ircd.events.Ids`, never by a module-level counter that
    every server in the process would share."""
    found = []
    for path in sorted(IRCD.rglob("*.py")):
        for node in ast.parse(path.read_text(), str(path)).body:
            if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
                for call in ast.walk(node.value):
                    if (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
                            and call.func.attr == "count"
                            and isinstance(call.func.value, ast.Name)
                            and call.func.value.id == "itertools"):
                        found.append(f"{path.relative_to(IRCD.parent)}:{node.lineno}")
    assert found == []


def test_two_servers_make_their_own_ids():
    from ircd.events import Ids

    a, b = Ids(), Ids()
    ids = [a.msgid() for _ in range(3)] + [b.msgid() for _ in range(3)]
    assert len(set(ids)) == 6
    assert a.batch() == "h1" and a.batch("L") == "L2" and b.batch() == "h1"
    assert all(i.isalnum() for i in ids)
