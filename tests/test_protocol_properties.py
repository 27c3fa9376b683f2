"""Property tests (hypothesis) of the sans-I/O wire layer."""

from __future__ import annotations

import string

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ircd.protocol import (
    LineDecoder,
    LineTooLong,
    Message,
    MessageParseError,
    casefold,
    format_line,
    parse_line,
)
from ircd.protocol.message import escape_tag_value, unescape_tag_value

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Any text that may appear in a parameter: no NUL, CR or LF (surrogates cannot be
# encoded to UTF-8 and never come out of a decoder).
_param_chars = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\r\n")

middle_params = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\r\n "),
    min_size=1, max_size=12,
).filter(lambda p: not p.startswith(":"))

last_params = st.text(alphabet=_param_chars, max_size=40)

commands = st.one_of(
    st.text(alphabet=string.ascii_uppercase, min_size=1, max_size=10),
    st.integers(min_value=0, max_value=999).map(lambda n: f"{n:03d}"),
)

sources = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\r\n "),
    min_size=1, max_size=30,
)

tag_keys = st.builds(
    lambda client, vendor, name: ("+" if client else "") + (vendor + "/" if vendor else "") + name,
    st.booleans(),
    st.one_of(st.just(""), st.from_regex(r"[a-z][a-z0-9.-]{0,10}", fullmatch=True)),
    st.from_regex(r"[A-Za-z0-9][A-Za-z0-9-]{0,10}", fullmatch=True),
)

tag_values = st.text(alphabet=_param_chars, max_size=20)

tag_dicts = st.dictionaries(tag_keys, tag_values, max_size=5)


@FAST
@given(st.binary(max_size=700))
@example(b"")
@example(b"@")
@example(b":")
@example(b"@a :b")
@example(b"\xff\xfe\xfd")
@example(b"@" + b"x" * 5000 + b" PING")
def test_parse_line_returns_a_message_or_raises_message_parse_error(data):
    try:
        msg = parse_line(data)
    except MessageParseError as exc:
        assert exc.reason in ("empty", "too-long", "tags-too-long")
    else:
        assert isinstance(msg, Message)
        assert msg.command
        assert all(isinstance(p, str) for p in msg.params)


@FAST
@given(st.binary(max_size=700))
def test_parse_line_without_length_check_never_raises_anything_else(data):
    try:
        parse_line(data, check_length=False)
    except MessageParseError as exc:
        assert exc.reason == "empty"


@FAST
@given(
    tags=tag_dicts,
    source=st.one_of(st.none(), sources),
    command=commands,
    middle=st.lists(middle_params, max_size=6),
    last=st.one_of(st.none(), last_params),
    trailing=st.booleans(),
)
@example(tags={}, source=None, command="PRIVMSG", middle=["a\tb"], last="x", trailing=False)
def test_format_line_then_parse_line_round_trips(tags, source, command, middle, last, trailing):
    params = middle + ([last] if last is not None else [])
    line = format_line(command, params, source=source, tags=tags or None, trailing=trailing)
    assert "\r" not in line and "\n" not in line and "\0" not in line
    msg = parse_line(line, check_length=False)
    assert msg.command == command
    assert msg.params == params
    assert msg.source == source
    assert msg.tags == tags


@FAST
@given(tag_values)
def test_tag_value_escape_round_trips(value):
    escaped = escape_tag_value(value)
    assert not any(c in escaped for c in "; \r\n")
    assert unescape_tag_value(escaped) == value


def _reference_lines(stream: bytes, max_line: int) -> list:
    """What a line splitter must produce for the terminated lines of ``stream``."""
    out: list = []
    for raw in stream.split(b"\n")[:-1]:
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        if len(raw) > max_line:
            out.append(LineTooLong)
        elif raw:
            out.append(raw)
    return out


_stream_bytes = st.lists(
    st.sampled_from([b"a", b"b", b" ", b":", b"\r", b"\n", b"\r\n", b"\xff", b"xyz" * 3]),
    max_size=80,
).map(b"".join)


@FAST
@given(stream=_stream_bytes, cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=30),
       max_line=st.integers(min_value=1, max_value=16))
@example(stream=b"0123456789\r\n", cuts=[11], max_line=10)
def test_line_decoder_result_does_not_depend_on_chunking(stream, cuts, max_line):
    whole = LineDecoder(max_line).push(stream)
    dec = LineDecoder(max_line)
    chunked: list = []
    bounds = sorted({0, len(stream), *(c for c in cuts if c <= len(stream))})
    for lo, hi in zip(bounds, bounds[1:], strict=False):
        chunked.extend(dec.push(stream[lo:hi]))
        assert dec.buffered <= max_line
    # Only terminated lines are compared: an unterminated over-long tail is
    # reported as soon as it is seen, which may be before its LF arrives.
    terminated = stream[: stream.rfind(b"\n") + 1]
    expected = _reference_lines(terminated, max_line)
    tail = stream[len(terminated):]
    assert whole[: len(expected)] == expected
    if len(tail) > max_line + 1:  # too long whatever follows
        assert whole[len(expected):] == [LineTooLong]
    else:
        assert whole[len(expected):] in ([], [LineTooLong])
    assert chunked[: len(expected)] == expected


@FAST
@given(lines=st.lists(st.binary(min_size=1, max_size=30).filter(
           lambda b: b"\n" not in b and not b.endswith(b"\r")), max_size=20),
       crlf=st.lists(st.booleans(), min_size=20, max_size=20),
       sizes=st.lists(st.integers(min_value=1, max_value=7), min_size=1, max_size=10))
def test_line_decoder_yields_each_short_line_once_for_any_chunk_size(lines, crlf, sizes):
    stream = b"".join(line + (b"\r\n" if crlf[i] else b"\n") for i, line in enumerate(lines))
    dec = LineDecoder(64)
    got: list = []
    pos, i = 0, 0
    while pos < len(stream):
        n = sizes[i % len(sizes)]
        got.extend(dec.push(stream[pos : pos + n]))
        pos += n
        i += 1
    assert got == lines
    assert dec.buffered == 0


@FAST
@given(st.text(max_size=40))
def test_casefold_is_idempotent(name):
    once = casefold(name)
    assert casefold(once) == once


@FAST
@given(st.text(alphabet=string.ascii_letters + "[]\\~{}|^0123456789-_`", max_size=30))
def test_casefold_equates_exactly_the_rfc1459_pairs(name):
    folded = casefold(name)
    assert folded == name.lower().translate(str.maketrans("[]\\~", "{}|^"))
    assert not any(c in folded for c in string.ascii_uppercase + "[]\\~")
