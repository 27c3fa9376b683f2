"""The sans-I/O IRC wire layer: bytes in, messages out, messages in, bytes out.

Nothing in this package performs I/O or imports asyncio; every function is
testable by feeding it bytes or strings (in the style of h11 and irctokens).
"""

from ircd.protocol.casemap import casefold, is_valid_channel, is_valid_nick
from ircd.protocol.framing import LineDecoder, LineTooLong
from ircd.protocol.message import Message, MessageParseError, format_line, parse_line

__all__ = [
    "LineDecoder",
    "LineTooLong",
    "Message",
    "MessageParseError",
    "casefold",
    "format_line",
    "is_valid_channel",
    "is_valid_nick",
    "parse_line",
]
