"""Config text with ``[[opers]]`` for the operator and server-ban tests."""

from __future__ import annotations

from passlib.hash import argon2

from tests.support import RawClient, config_with

OPER_PASSWORD = "correct horse"
ADMIN_PASSWORD = "battery staple"

_fast = argon2.using(type="ID", time_cost=1, memory_cost=1024, parallelism=1)


def oper_hash(password: str) -> str:
    """An argon2id hash with the suite's fast parameters (as ``chatserver mkpasswd`` makes)."""
    return _fast.hash(password)


def oper_block(name: str, password: str, cls: str = "oper",
               hosts: list[str] | None = None) -> str:
    """One ``[[opers]]`` table as TOML text."""
    text = f'\n[[opers]]\nname = "{name}"\npassword = "{oper_hash(password)}"\nclass = "{cls}"\n'
    if hosts is not None:
        text += "hosts = [" + ", ".join(f'"{h}"' for h in hosts) + "]\n"
    return text


def opers_config(extra: str = "", **sections: dict[str, object]) -> str:
    """The suite's fast config with an oper ``ops`` (class oper) and ``root`` (class admin).

    ``[[opers]]`` tables must come after every plain table, so they are appended last.
    """
    return (config_with(**sections) + extra + oper_block("ops", OPER_PASSWORD)
            + oper_block("root", ADMIN_PASSWORD, "admin"))


def become_oper(client: RawClient, name: str = "ops", password: str = OPER_PASSWORD) -> None:
    """OPER and wait for 381 RPL_YOUREOPER."""
    client.send(f"OPER {name} :{password}")
    client.expect_numeric("381")


def connect(port: int, nick: str, source: str | None = None) -> RawClient:
    """A registered raw client (a guest) named ``nick``."""
    client = RawClient(port, source=source)
    client.register(nick)
    return client
