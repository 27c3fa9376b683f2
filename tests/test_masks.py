"""The glob matcher (``ircd/protocol/masks.py``): agreement with a reference, and linear time.

The ircdocs ``mask-match`` vectors are in ``tests/test_protocol.py``; the
server-level checks (WHO, +b, LIST against the running server) are in
``tests/test_no_superlinear.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ircd.listfilter import parse_list_filter
from ircd.protocol.masks import Glob, compile_mask, mask_match
from ircd.state import Channel
from ircd.websocket import origin_allowed
from tests.support import ROOT

FAST = settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def reference_match(mask: str, name: str) -> bool:
    """The textbook dynamic programme: ``ok[i][j]`` is "mask[:i] matches name[:j]"."""
    ok = [[False] * (len(name) + 1) for _ in range(len(mask) + 1)]
    ok[0][0] = True
    for i, m in enumerate(mask, 1):
        for j in range(len(name) + 1):
            if m == "*":
                ok[i][j] = ok[i - 1][j] or (j > 0 and ok[i][j - 1])
            elif j > 0:
                ok[i][j] = ok[i - 1][j - 1] and (m == "?" or m == name[j - 1])
    return ok[len(mask)][len(name)]


@FAST
@given(st.text(alphabet="ab*?", max_size=12), st.text(alphabet="abc", max_size=14))
@example("*a*a*b", "aaaab")
@example("**", "")
@example("a**?b", "axb")
@example("?", "")
@example("", "")
def test_glob_agrees_with_the_reference_on_small_alphabets(mask, name):
    assert Glob(mask).match(name) is reference_match(mask, name), (mask, name)


@FAST
@given(st.text(alphabet="aA[]{}\\|~^*?!@", max_size=10),
       st.text(alphabet="aA[]{}\\|~^!@", max_size=12))
def test_mask_match_agrees_with_the_reference_after_rfc1459_casefolding(mask, name):
    fold = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ[]\\~", "abcdefghijklmnopqrstuvwxyz{}|^")
    assert mask_match(mask, name) is reference_match(mask.translate(fold), name.translate(fold))
    assert compile_mask(mask).match(name.translate(fold)) is mask_match(mask, name)


def test_brackets_and_backslashes_are_ordinary_characters():
    assert mask_match("cool[guy]!*@*", "cool[guy]!u@h") and not mask_match("cool[guy]!*@*", "coolg!u@h")
    assert Glob("a\\*").match("a\\xyz") and not Glob("a\\*").match("a*")
    assert origin_allowed("http://[::1]:8080", ["http://[::1]:*"])
    assert not origin_allowed("http://1:8080", ["http://[::1]:*"])


_ADVERSARIAL = textwrap.dedent("""
    import json, sys, time
    from ircd.protocol.masks import Glob, mask_match
    from ircd.listfilter import parse_list_filter
    from ircd.serverbans import KLINE, BanList, ServerBan
    from ircd.state import Channel

    # (mask, name, matches): names that pass the cheap prefix/suffix checks,
    # so the automaton runs over every character.
    cases = [
        ("*a" * 150 + "*b*c", "a" * 499 + "c", False),
        ("*a" * 120 + "*b!*@*", "a" * 400 + "!" + "a" * 99 + "@h", False),
        ("a*" * 130 + "b", "a" * 499 + "b", True),
        ("*?" * 130 + "*b*c", "a" * 499 + "c", False),
        ("*a?" * 80 + "*b", "ab" * 250, True),
        ("?" * 250 + "*" + "a*" * 60 + "c", "a" * 499 + "c", True),
        ("*" + ("a" * 20 + "b*") * 10 + "c", "a" * 599 + "c", False),
        ("*" + "a" * 250 + "*" + "a" * 250 + "b*c", "a" * 599 + "c", False),
    ]
    worst = 0.0
    for mask, name, matches in cases:
        assert len(mask) >= 200 and len(name) >= 500, (len(mask), len(name))
        start = time.perf_counter()
        assert mask_match(mask, name) is matches, mask
        assert Glob(mask).match(name) is matches, mask
        worst = max(worst, time.perf_counter() - start)
    # The call sites: a LIST mask over a channel name, a K-line over a source.
    chan = Channel(name="#" + "a" * 63, created=0.0)
    start = time.perf_counter()
    assert not parse_list_filter("*a" * 100 + "*b").matches(chan, 0.0)
    bans = BanList()
    bans.add(ServerBan(KLINE, "*a" * 100 + "*b!*@*", "reason", "oper!o@h", 0.0))
    assert bans.kline_for(("a" * 30 + "!" + "a" * 200 + "@127.0.0.1",), 0.0) is None
    worst = max(worst, time.perf_counter() - start)
    print(json.dumps({"worst": worst}))
""")


def test_adversarial_masks_of_200_chars_against_500_char_names_finish_in_bounded_time():
    # In a child process: a backtracking matcher never returns (and holds the
    # GIL), so the bound is enforced from outside. Linear matching takes about
    # a millisecond per call; a regex would take longer than the age of the
    # universe on the first case.
    done = subprocess.run([sys.executable, "-c", _ADVERSARIAL], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["worst"] < 2.0


def test_list_filter_uses_compiled_masks_and_names():
    f = parse_list_filter("#A,*b?,!*z")
    assert [g.mask for g in f.globs] == ["*b?"] and [g.mask for g in f.negative_globs] == ["*z"]
    assert f.matches(Channel(name="#a", created=0.0), 0.0)
    assert f.matches(Channel(name="#Bx", created=0.0), 0.0)
    assert not f.matches(Channel(name="#Bz", created=0.0), 0.0)
    assert not f.matches(Channel(name="#c", created=0.0), 0.0)
