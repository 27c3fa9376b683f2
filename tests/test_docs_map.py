"""docs/architecture.md and the module docstrings name only what exists.

Mechanical checks that keep the map of the code from going stale when code
moves: every path it names exists, every module of ``ircd/`` and
``nativeclient/`` has a row, every ``Class.attribute`` and code name it
quotes is defined, and every Sphinx cross-reference (``:mod:``, ``:class:``,
``:func:``, ``:meth:``, ``:attr:``, ``:data:``) in a module docstring
resolves. They cannot tell whether a sentence is true, only that what it
names is there.
"""

from __future__ import annotations

import ast
import builtins
import dataclasses
import importlib
import re
import typing
from collections import defaultdict
from functools import cache
from pathlib import Path

import pytest

from ircd.config import Config
from tests.support import ROOT

DOC = ROOT / "docs" / "architecture.md"
PACKAGES = ("ircd", "nativeclient")


def _modules() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def _dotted(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _quoted(text: str) -> set[str]:
    """Every `code span` of a Markdown text."""
    return set(re.findall(r"`([^`\n]+)`", text))


class _Names:
    """What the code defines: names anywhere, and attributes per class."""

    def __init__(self) -> None:
        self.names: set[str] = set()
        self.classes: dict[str, set[str]] = defaultdict(set)
        self.bases: dict[str, set[str]] = defaultdict(set)
        self.top: dict[str, set[str]] = defaultdict(set)   # module basename -> top-level names

    def add_file(self, path: Path) -> None:
        tree = ast.parse(path.read_text())
        base = path.stem if path.stem != "__init__" else path.parent.name
        for node in tree.body:
            for name in _bound(node):
                self.top[base].add(name)
        for node in ast.walk(tree):
            self.names.update(_bound(node))
            if isinstance(node, ast.arg):
                self.names.add(node.arg)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                self.names.add(node.attr)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                self.names.update(re.findall(r"[A-Za-z_]\w*", node.value))
            if isinstance(node, ast.ClassDef):
                attrs = self.classes[node.name]
                self.bases[node.name].update(
                    b.id if isinstance(b, ast.Name) else getattr(b, "attr", "")
                    for b in node.bases)
                for sub in ast.walk(node):
                    attrs.update(_bound(sub))
                    if isinstance(sub, ast.Attribute) and isinstance(sub.ctx, ast.Store):
                        attrs.add(sub.attr)
                    if (isinstance(sub, ast.Assign) and any(
                            isinstance(t, ast.Name) and t.id == "__slots__" for t in sub.targets)
                            and isinstance(sub.value, (ast.Tuple, ast.List))):
                        attrs.update(e.value for e in sub.value.elts
                                     if isinstance(e, ast.Constant))

    def has_attr(self, cls: str, attr: str, seen: frozenset[str] = frozenset()) -> bool:
        if attr in self.classes.get(cls, ()):
            return True
        return any(self.has_attr(b, attr, seen | {cls})
                   for b in self.bases.get(cls, ()) if b not in seen)


def _bound(node: ast.AST) -> list[str]:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [node.name]
    targets: list[ast.AST] = []
    if isinstance(node, ast.Assign):
        targets = node.targets
    elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
        targets = [node.target]
    elif isinstance(node, (ast.Import, ast.ImportFrom)):
        return [(a.asname or a.name).split(".")[0] for a in node.names]
    return [t.id for t in targets if isinstance(t, ast.Name)]


@cache
def _code() -> _Names:
    names = _Names()
    for path in _modules():
        names.add_file(path)
    return names


@cache
def _test_functions() -> set[str]:
    found: set[str] = set()
    for path in (ROOT / "tests").glob("test_*.py"):
        found.update(re.findall(r"^(?:async )?def (test_\w+)", path.read_text(), re.M))
    return found


def test_every_path_the_architecture_doc_names_exists():
    missing = [p for p in _quoted(DOC.read_text())
               if re.fullmatch(r"(ircd|nativeclient|tests|bench|contrib|docs)/[\w./-]*", p)
               and not (ROOT / p).exists()]
    assert not missing, f"docs/architecture.md names paths that do not exist: {missing}"


def test_every_module_has_a_row_in_the_map():
    text = DOC.read_text()
    table = "\n".join(line for line in text.split("## Where each thing lives", 1)[1]
                      .split("\n## ", 1)[0].splitlines() if line.startswith("|"))
    quoted = _quoted(table) | {w for q in _quoted(table) for w in q.split()}
    uncovered = []
    for path in _modules():
        rel = path.relative_to(ROOT).as_posix()
        parent = path.parent.relative_to(ROOT).as_posix() + "/"
        if rel in quoted:
            continue
        if parent in quoted and (path.name in quoted or path.name in ("__init__.py",
                                                                       "__main__.py")):
            continue
        if parent in quoted and re.search(rf"`{re.escape(path.name)}`", text):
            continue
        uncovered.append(rel)
    assert not uncovered, f"modules without a row in docs/architecture.md's map: {uncovered}"


CONFIG_SECTIONS = {name: {f.name for f in dataclasses.fields(kind)}
                   for name, kind in typing.get_type_hints(Config).items()
                   if dataclasses.is_dataclass(kind)}
"""Each ``[section]`` of config.toml with its keys."""

INSTANCES = {"session": "Session", "ctx": "Context", "server": "Server", "chan": "Channel",
             "client": "User", "user": "User"}
"""The usual variable names of the doc's examples (``session.pending``) and their classes."""


def _resolves_in_doc(token: str) -> bool:
    code = _code()
    head = re.match(r"[A-Za-z_][\w.]*", token)
    if head is None:
        return True
    name = head.group(0).rstrip(".")
    parts = name.split(".")
    if parts[0] in PACKAGES:
        return _importable(name)
    if name.endswith(".py") or token.endswith(".py"):
        return True   # a file of a directory the same row names (checked above)
    if parts[0] not in code.top and parts[0] not in code.classes and parts[0] not in INSTANCES \
            and parts[0] not in CONFIG_SECTIONS and len(parts) > 1 and _external(name):
        return True   # another library's name (asyncio.to_thread)
    if len(parts) == 1:
        if name.startswith("test_"):
            return name in _test_functions()
        if "_" in name.strip("_") or re.fullmatch(r"[A-Z][a-z]+[A-Z]\w*", name) or name[:1] == "_":
            return name in code.names
        return True   # a plain word (`pending`, `HELP`): not checked
    first, attr = parts[0], parts[-1]
    if first in CONFIG_SECTIONS and len(parts) == 2 and attr in CONFIG_SECTIONS[first]:
        return True   # a setting: `accounts.hash_workers` is [accounts] hash_workers
    first = INSTANCES.get(first, first)
    if first in code.classes:
        return code.has_attr(first, attr) or attr in code.names and len(parts) > 2
    if first in code.top:
        return attr in code.top[first] or any(code.has_attr(c, attr) for c in code.top[first]
                                              if c in code.classes)
    return attr in code.names


def _importable(dotted: str) -> bool:
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError:
            # an instance attribute (set in __init__) is not on the class
            return isinstance(obj, type) and _code().has_attr(obj.__name__, parts[-1])
        return True
    return False


def test_every_code_name_the_architecture_doc_quotes_is_defined():
    skip_prefixes = ("ERROR ", "PRIVMSG ", "SEND ", "HELLO-FROM", "INSERT ", "[", "/")
    unresolved = sorted(t for t in _quoted(DOC.read_text())
                        if "/" not in t and not t.startswith(skip_prefixes)
                        and not _resolves_in_doc(t))
    assert not unresolved, f"docs/architecture.md quotes names the code lacks: {unresolved}"


ROLE = re.compile(r":(mod|class|func|meth|attr|data|exc):`~?([\w.]+)`")


def _docstring_refs() -> list[tuple[str, str, str]]:
    refs = []
    for path in _modules():
        doc = ast.get_docstring(ast.parse(path.read_text()))
        if doc:
            refs.extend((_dotted(path), role, target) for role, target in ROLE.findall(doc))
    return refs


def _resolve_ref(module: str, target: str) -> bool:
    if target.split(".")[0] in PACKAGES and _importable(target):
        return True
    if _importable(f"{module}.{target}") or hasattr(builtins, target):
        return True
    # a name of another library (asyncio.Future, prometheus_client...) or the stdlib
    return target.split(".")[0] not in PACKAGES and _external(target)


def _external(target: str) -> bool:
    parts = target.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return False
        return True
    return False


@pytest.mark.parametrize("module", sorted({m for m, _r, _t in _docstring_refs()}))
def test_module_docstring_cross_references_resolve(module):
    broken = [f":{role}:`{target}`" for m, role, target in _docstring_refs()
              if m == module and not _resolve_ref(module, target)]
    assert not broken, f"{module}'s docstring refers to what does not exist: {broken}"
