"""ircd.chanaccess without I/O: list masks, bans, exceptions, invite exceptions, mutes."""

from __future__ import annotations

import pytest

from ircd.chanaccess import (
    extban_type,
    is_banned,
    is_exempt,
    is_invite_excepted,
    is_muted,
    list_for,
    normalize_list_mask,
)
from ircd.state import Channel, Client


def _client(nick: str, user: str = "u", ip: str = "10.0.0.1") -> Client:
    c = Client(1, ip)
    c.user = user
    c.set_nick(nick)
    return c


def _chan(**lists: list[str]) -> Channel:
    chan = Channel(name="#c", created=0.0)
    for letter, masks in lists.items():
        list_for(chan, {"b": "b", "e": "e", "I": "I"}[letter]).extend(
            (normalize_list_mask(m), "op", 0.0) for m in masks)
    return chan


@pytest.mark.parametrize(("given", "stored"), [
    ("bob", "bob!*@*"), ("u@h", "*!u@h"), ("bob!u", "bob!u@*"), ("*!*@*", "*!*@*"),
    ("m:bob", "m:bob!*@*"), ("m:*@spam", "m:*!*@spam"), ("m:a!b@c", "m:a!b@c"),
])
def test_masks_are_completed(given, stored):
    assert normalize_list_mask(given) == stored


@pytest.mark.parametrize("bad", ["", "m:", "x:bob", "Z:bob"])
def test_bad_masks_raise_value_error(bad):
    with pytest.raises(ValueError):
        normalize_list_mask(bad)


def test_extban_type_only_for_letter_colon():
    assert extban_type("m:bob!*@*") == "m"
    assert extban_type("*!*@::1") is None
    assert extban_type("bob!*@*") is None


def test_ban_matches_and_exception_lifts_it():
    bob, amy = _client("bob"), _client("amy")
    chan = _chan(b=["bob"])
    assert is_banned(chan, bob) and not is_banned(chan, amy)
    chan.excepts.append(("*!u@10.0.0.1", "op", 0.0))
    assert is_exempt(chan, bob) and not is_banned(chan, bob)


def test_a_mute_is_not_a_ban_and_a_ban_is_not_a_mute():
    bob = _client("Bob")
    muted = _chan(b=["m:bob"])
    assert is_muted(muted, bob) and not is_banned(muted, bob)
    banned = _chan(b=["bob"])
    assert is_banned(banned, bob) and not is_muted(banned, bob)


def test_mute_exceptions_plain_and_extban():
    bob = _client("bob")
    assert not is_muted(_chan(b=["m:bob"], e=["bob"]), bob)
    assert not is_muted(_chan(b=["m:bob"], e=["m:*!*@10.*"]), bob)
    # an m: exception does not lift a plain ban
    assert is_banned(_chan(b=["bob"], e=["m:bob"]), bob)


def test_invite_exception_matches_plain_masks():
    bob, amy = _client("bob"), _client("amy", ip="10.9.9.9")
    chan = _chan(I=["*!*@10.0.0.1"])
    assert is_invite_excepted(chan, bob) and not is_invite_excepted(chan, amy)
    assert not is_invite_excepted(_chan(), bob)


def test_list_masks_are_compiled_once_per_channel_and_the_cache_is_bounded():
    from ircd import chanaccess
    from ircd.state import Channel, Client

    chan = Channel("#c", 0.0)
    chan.bans = [(f"?????{i:03d}" + "?z" * 200, "op", 0.0) for i in range(100)]
    user = Client(1, "127.0.0.1", "irc", 0.0)
    user.set_nick("someone")
    user.user, user.host = "u", "h"
    user.update_source()
    assert not chanaccess.is_banned(chan, user)
    compiled = dict(chan.globs)
    assert len(compiled) == 100
    assert not chanaccess.is_banned(chan, user)
    assert all(chan.globs[m] is g for m, g in compiled.items())   # reused, not recompiled
    for i in range(3 * chanaccess.MAX_LIST_ENTRIES + 50):
        chanaccess._glob(chan, f"x{i}!*@*")
    assert len(chan.globs) <= 3 * chanaccess.MAX_LIST_ENTRIES
