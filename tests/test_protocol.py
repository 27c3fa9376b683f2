"""The sans-I/O wire layer: parser test vectors, framing, limits, escaping, casemapping.

The ircdocs parser-tests vectors (https://github.com/ircdocs/parser-tests) live
in ``shared/reference/parser-tests`` next to the repository, and a copy of the
three files used (CC0, with its LICENSE) in ``tests/vectors/parser-tests``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ircd.protocol import (
    LineDecoder,
    LineTooLong,
    MessageParseError,
    casefold,
    format_line,
    is_valid_channel,
    is_valid_nick,
    parse_line,
)
from ircd.protocol.masks import mask_match, normalize_ban_mask
from ircd.protocol.message import (
    MAX_LINE_BODY,
    MAX_TAGS,
    Message,
    escape_tag_value,
    format_tags,
    parse_tags,
    unescape_tag_value,
)

# A vendored copy (CC0, with its LICENSE) is used when ../shared is not beside the repository.
_SHARED = Path(__file__).resolve().parents[2] / "shared/reference/parser-tests"
_VENDORED = Path(__file__).resolve().parent / "vectors/parser-tests"
VECTORS = _SHARED if _SHARED.is_dir() else _VENDORED


def _load_vectors(name: str) -> list[dict]:
    path = VECTORS / name
    if not path.is_file():
        pytest.skip(f"ircdocs parser-tests vectors not found: {path} (expected folder {VECTORS})")
    return yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]


def _vector_ids(name: str) -> list:
    """Parametrise over the vectors of ``name`` (one param that skips if the folder is absent)."""
    path = VECTORS / name
    if not path.is_file():
        reason = f"ircdocs parser-tests vectors not found: {path} (expected folder {VECTORS})"
        return [pytest.param(None, id="missing", marks=pytest.mark.skip(reason=reason))]
    tests = yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]
    return [pytest.param(t, id=f"{i}") for i, t in enumerate(tests)]


def _atoms(msg: Message) -> tuple:
    return (msg.tags, msg.source, msg.command, msg.params)


def _expected_atoms(atoms: dict) -> tuple:
    # parse_line upper-cases the verb (IRC commands are case-insensitive), so the
    # vectors' lower-case verbs ("foo") are compared upper-cased.
    tags = {k: ("" if v is None else v) for k, v in (atoms.get("tags") or {}).items()}
    return (tags, atoms.get("source"), atoms["verb"].upper(), list(atoms.get("params") or []))


# -- ircdocs vectors -------------------------------------------------------


@pytest.mark.parametrize("case", _vector_ids("msg-split.yaml"))
def test_msg_split_vector_parses_to_its_atoms(case):
    msg = parse_line(case["input"], check_length=False)
    assert _atoms(msg) == _expected_atoms(case["atoms"]), case["input"]


def test_msg_split_vectors_are_all_present():
    tests = _load_vectors("msg-split.yaml")
    assert len(tests) >= 30


@pytest.mark.parametrize("case", _vector_ids("msg-join.yaml"))
def test_msg_join_vector_formats_to_a_matching_line(case):
    atoms = case["atoms"]
    tags = {k: ("" if v is None else v) for k, v in (atoms.get("tags") or {}).items()}
    line = format_line(atoms["verb"], list(atoms.get("params") or []),
                       source=atoms.get("source"), tags=tags or None)
    if line not in case["matches"]:
        # Tag order and optional ':' may differ: it must at least parse back to the atoms.
        assert _atoms(parse_line(line, check_length=False)) == _expected_atoms(atoms), line


@pytest.mark.parametrize("case", _vector_ids("mask-match.yaml"))
def test_mask_match_vector(case):
    mask = case["mask"]
    for name in case.get("matches") or []:
        assert mask_match(mask, name), (mask, name)
    for name in case.get("fails") or []:
        assert not mask_match(mask, name), (mask, name)


# userhost-split.yaml: ircd has no nick!user@host splitting function (Client keeps
# the parts separately), so those vectors are not run.
# validate-hostname.yaml: ircd has no hostname validator either; not run.


def test_mask_match_is_case_insensitive_with_rfc1459_mapping():
    assert mask_match("Nick[a]!*@*", "nick{A}!u@h")
    assert mask_match("*!*@HOST", "x!y@host")
    assert not mask_match("a?c!*@*", "ac!u@h")


def test_normalize_ban_mask_completes_partial_masks():
    assert normalize_ban_mask("nick") == "nick!*@*"
    assert normalize_ban_mask("u@h") == "*!u@h"
    assert normalize_ban_mask("n!u") == "n!u@*"
    assert normalize_ban_mask("n!u@h") == "n!u@h"


# -- LineDecoder -----------------------------------------------------------


def test_line_decoder_accepts_crlf_and_bare_lf():
    dec = LineDecoder()
    assert dec.push(b"NICK a\r\nUSER b 0 * :c\nPING x\r\n") == [
        b"NICK a", b"USER b 0 * :c", b"PING x",
    ]
    assert dec.buffered == 0


def test_line_decoder_joins_a_line_split_across_pushes():
    dec = LineDecoder()
    assert dec.push(b"PRIV") == []
    assert dec.buffered == 4
    assert dec.push(b"MSG #c :hel") == []
    assert dec.push(b"lo\r") == []
    assert dec.push(b"\nNI") == [b"PRIVMSG #c :hello"]
    assert dec.push(b"CK x\n") == [b"NICK x"]
    assert dec.buffered == 0


def test_line_decoder_returns_several_lines_from_one_push_in_order():
    dec = LineDecoder()
    data = b"".join(f"PRIVMSG #c :{i}\r\n".encode() for i in range(50))
    assert dec.push(data) == [f"PRIVMSG #c :{i}".encode() for i in range(50)]


def test_line_decoder_drops_empty_lines():
    dec = LineDecoder()
    assert dec.push(b"\r\n\n\r\nPING a\r\n\r\n\n") == [b"PING a"]


def test_line_decoder_removes_only_one_trailing_cr():
    dec = LineDecoder()
    assert dec.push(b"PING a\r\r\n") == [b"PING a\r"]


def test_over_long_line_in_one_push_gives_one_marker_and_recovers():
    dec = LineDecoder(max_line=20)
    out = dec.push(b"x" * 21 + b"\r\nPING ok\r\n")
    assert out == [LineTooLong, b"PING ok"]
    assert dec.buffered == 0


def test_over_long_unterminated_line_gives_exactly_one_marker_and_bounded_buffer():
    dec = LineDecoder(max_line=100)
    markers = 0
    for _ in range(200):  # 200 * 37 bytes without a line end
        out = dec.push(b"A" * 37)
        markers += sum(1 for item in out if item is LineTooLong)
        assert all(item is LineTooLong for item in out)
        assert dec.buffered <= 100
    assert markers == 1
    # The tail of the long line is discarded; the next line is intact.
    assert dec.push(b"AAAA\r\nPRIVMSG #c :after\r\n") == [b"PRIVMSG #c :after"]
    assert dec.buffered == 0


def test_line_of_exactly_max_line_is_accepted():
    dec = LineDecoder(max_line=10)
    assert dec.push(b"0123456789\r\n") == [b"0123456789"]
    assert dec.push(b"0123456789") == []
    assert dec.push(b"\n") == [b"0123456789"]


def test_line_of_exactly_max_line_split_between_cr_and_lf_is_accepted():
    # max_line counts the line without its terminator, so the CR that arrives in
    # the first chunk must not make the line "too long": the result may not depend
    # on where TCP split the stream.
    dec = LineDecoder(max_line=10)
    out = dec.push(b"0123456789\r") + dec.push(b"\n")
    assert out == [b"0123456789"]


def test_line_decoder_max_line_default_allows_tags_plus_body():
    dec = LineDecoder()
    assert dec.max_line == 8189
    line = b"@" + b"a" * 4000 + b" PRIVMSG #c :" + b"x" * 490
    assert dec.push(line + b"\r\n") == [line]


# -- parse_line limits -----------------------------------------------------


def test_body_of_510_bytes_is_accepted():
    line = "PRIVMSG #c :" + "x" * (MAX_LINE_BODY - len("PRIVMSG #c :"))
    assert len(line) == 510
    assert parse_line(line).params == ["#c", "x" * 498]
    assert parse_line(line.encode()).command == "PRIVMSG"


def test_body_of_511_bytes_raises_too_long():
    line = "PRIVMSG #c :" + "x" * (MAX_LINE_BODY + 1 - len("PRIVMSG #c :"))
    with pytest.raises(MessageParseError) as info:
        parse_line(line)
    assert info.value.reason == "too-long"
    with pytest.raises(MessageParseError) as info:
        parse_line(line.encode())
    assert info.value.reason == "too-long"


def test_body_limit_counts_utf8_bytes_not_characters():
    head = "PRIVMSG #c :"
    ok = head + "é" * ((MAX_LINE_BODY - len(head)) // 2)  # 2 bytes each: 510 bytes
    assert len(ok.encode()) == 510
    assert parse_line(ok).params[1] == "é" * 249
    with pytest.raises(MessageParseError) as info:
        parse_line(ok + "x")
    assert info.value.reason == "too-long"


def test_long_line_is_accepted_without_length_check():
    line = "PRIVMSG #c :" + "x" * 2000
    assert parse_line(line, check_length=False).params[1] == "x" * 2000


def test_body_limit_does_not_count_the_tags():
    tags = "@" + "k=" + "v" * 3000
    body = "PRIVMSG #c :" + "x" * (MAX_LINE_BODY - len("PRIVMSG #c :"))
    msg = parse_line(f"{tags} {body}")
    assert msg.tags == {"k": "v" * 3000}
    assert len(msg.params[1]) == 498


def test_tag_section_of_4096_bytes_is_accepted():
    # "@" + "k=" + value + " " is exactly MAX_TAGS bytes.
    value = "v" * (MAX_TAGS - len("@k= "))
    msg = parse_line(f"@k={value} PING x")
    assert msg.tags == {"k": value}
    assert msg.command == "PING"


def test_tag_section_of_4097_bytes_raises_tags_too_long():
    value = "v" * (MAX_TAGS + 1 - len("@k= "))
    with pytest.raises(MessageParseError) as info:
        parse_line(f"@k={value} PING x")
    assert info.value.reason == "tags-too-long"


@pytest.mark.parametrize("line", ["", "   ", "@a=b", "@a=b ", ":src", ":src   ", "@a :src "])
def test_line_without_command_raises_empty(line):
    with pytest.raises(MessageParseError) as info:
        parse_line(line)
    assert info.value.reason == "empty"


# -- UTF-8 -----------------------------------------------------------------


def test_invalid_utf8_is_replaced_with_u_fffd():
    msg = parse_line(b"PRIVMSG #c :caf\xe9 \xff\xfe ok")
    assert msg.params == ["#c", "caf\ufffd \ufffd\ufffd ok"]


def test_invalid_utf8_in_every_part_never_raises():
    msg = parse_line(b"@k=\xc3 :n\xff!u@h PRIVMSG #\xe2\x82 :\x80")
    assert msg.tags == {"k": "\ufffd"}
    assert msg.source == "n\ufffd!u@h"
    assert msg.params == ["#\ufffd", "\ufffd"]


def test_short_line_of_invalid_utf8_is_not_too_long():
    # 212 bytes on the wire: well inside the 510-byte limit, which is a limit on
    # the bytes received (Modern IRC "Message format"), not on the decoded text
    # (each invalid byte becomes the 3-byte U+FFFD).
    raw = b"PRIVMSG #c :" + b"\xff" * 200
    assert len(raw) <= MAX_LINE_BODY
    msg = parse_line(raw)
    assert msg.params == ["#c", "\ufffd" * 200]


def test_valid_utf8_is_decoded():
    msg = parse_line("PRIVMSG #c :héllo ✓ 日本".encode())
    assert msg.params[1] == "héllo ✓ 日本"


# -- parsing details -------------------------------------------------------


def test_command_is_upper_cased_and_params_split_on_spaces():
    msg = parse_line("privmsg   #c   :a  b ")
    assert msg.command == "PRIVMSG"
    assert msg.params == ["#c", "a  b "]


def test_only_space_separates_parameters():
    # RFC 2812 2.3.1: "middle" may contain any octet but NUL, CR, LF, space
    # (and ':' first); TAB and other whitespace are parameter characters.
    assert parse_line("FOO a\tb c").params == ["a\tb", "c"]
    assert parse_line("FOO a\x0bb\x0cc").params == ["a\x0bb\x0cc"]
    assert parse_line("FOO a\u00a0b").params == ["a\u00a0b"]


def test_empty_trailing_parameter_is_kept():
    assert parse_line("TOPIC #c :").params == ["#c", ""]


def test_trailing_parameter_may_contain_colons_and_leading_colon():
    assert parse_line("PRIVMSG #c ::-) a:b").params == ["#c", ":-) a:b"]


def test_source_is_parsed_without_colon():
    msg = parse_line(":nick!user@host PRIVMSG bob :hi")
    assert msg.source == "nick!user@host"
    assert msg.params == ["bob", "hi"]


def test_message_to_bytes_appends_crlf():
    msg = Message("PRIVMSG", ["#c", "hello world"], source="a!b@c", tags={"t": "1"})
    assert msg.to_bytes() == b"@t=1 :a!b@c PRIVMSG #c :hello world\r\n"


# -- tags ------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    ["plain", "semi;colon", "sp ace", "back\\slash", "cr\rlf\n", "\\s\\:", ";; \\ \r\n", "",
     "ünïcödé ✓", "trailing\\"],
)
def test_tag_value_escaping_round_trips(value):
    escaped = escape_tag_value(value)
    assert not any(c in escaped for c in "; \r\n")
    assert unescape_tag_value(escaped) == value


def test_tag_escape_uses_the_ircv3_sequences():
    assert escape_tag_value("a; b\\c\r\n") == "a\\:\\sb\\\\c\\r\\n"


def test_tag_unescape_drops_unknown_escapes_and_trailing_backslash():
    assert unescape_tag_value("a\\bc\\") == "abc"


def test_tags_round_trip_through_a_whole_line():
    tags = {"msgid": "a;b c", "+draft/reply": "x\\y", "flag": ""}
    line = format_line("PRIVMSG", ["#c", "hi"], source="n!u@h", tags=tags)
    assert line.startswith("@msgid=a\\:b\\sc;+draft/reply=x\\\\y;flag ")
    msg = parse_line(line)
    assert msg.tags == tags
    assert msg.params == ["#c", "hi"]


def test_parse_tags_last_duplicate_wins_and_missing_value_is_empty():
    assert parse_tags("a=1;b;a=2;c=") == {"a": "2", "b": "", "c": ""}


def test_format_tags_omits_empty_values():
    assert format_tags({"a": "", "b": "1"}) == "@a;b=1"


# -- format_line -----------------------------------------------------------


def test_format_line_adds_colon_only_when_needed():
    assert format_line("PRIVMSG", ["#c", "word"]) == "PRIVMSG #c word"
    assert format_line("PRIVMSG", ["#c", "two words"]) == "PRIVMSG #c :two words"
    assert format_line("PRIVMSG", ["#c", ":smile"]) == "PRIVMSG #c ::smile"
    assert format_line("TOPIC", ["#c", ""]) == "TOPIC #c :"
    assert format_line("PING", ["x"], trailing=True) == "PING :x"
    assert format_line("AWAY") == "AWAY"
    assert format_line("NICK", ["a"], source="srv") == ":srv NICK a"


@pytest.mark.parametrize("bad", ["", "a b", ":a", "a\rb", "a\nb", "a\0b"])
def test_format_line_rejects_bad_middle_param(bad):
    with pytest.raises(ValueError):
        format_line("PRIVMSG", [bad, "text"])


@pytest.mark.parametrize("bad", ["a\rb", "a\nb", "a\0b", "\r\n", "line\r\nQUIT :x"])
def test_format_line_rejects_cr_lf_nul_in_last_param(bad):
    with pytest.raises(ValueError):
        format_line("PRIVMSG", ["#c", bad])


# -- casemapping and names -------------------------------------------------


def test_casefold_maps_rfc1459_specials():
    assert casefold("[]\\~") == "{}|^"
    assert casefold("{}|^") == "{}|^"
    assert casefold("ALICE") == "alice"
    assert casefold("A[B]") == casefold("a{b}") == "a{b}"
    assert casefold("Nick\\Name~") == "nick|name^"


def test_casefold_leaves_other_characters_alone():
    assert casefold("é_-`0Ü") == "é_-`0Ü"
    assert casefold("#Chan") == "#chan"


@pytest.mark.parametrize(
    "nick", ["alice", "A", "[x]", "`tick`", "a-b", "_under", "n1ck", "{|}^\\", "a" * 30],
)
def test_valid_nicks(nick):
    assert is_valid_nick(nick)


@pytest.mark.parametrize(
    "nick", ["", "1abc", "-abc", "a b", "a,b", "a!b", "a@b", "#chan", ":colon", "é", "a" * 31,
             "a*", "a?b", "a.b"],
)
def test_invalid_nicks(nick):
    assert not is_valid_nick(nick)


def test_nick_length_limit_is_a_parameter():
    assert is_valid_nick("abcde", maxlen=5)
    assert not is_valid_nick("abcdef", maxlen=5)


@pytest.mark.parametrize("name", ["#a", "#general", "#Ünïcödé", "##x", "#a.b-c_d", "#" + "x" * 63])
def test_valid_channels(name):
    assert is_valid_channel(name)


@pytest.mark.parametrize(
    "name", ["", "#", "general", "&local", "#a b", "#a,b", "#a\x07b", "#a\x00", "#a\r", "#a\n",
             "#a:b", "#" + "x" * 64],
)
def test_invalid_channels(name):
    assert not is_valid_channel(name)
