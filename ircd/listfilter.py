"""LIST filters (ISUPPORT ``ELIST=CMNTU``), parsed and applied without I/O.

"Modern IRC" (ELIST) names the filters; their meaning is Hybrid's and
InspIRCd's. ``LIST`` takes one parameter, a comma-separated list of items,
each one of:

- ``#chan``: exactly that channel (RFC 2812 section 3.2.6);
- ``*mask*`` (``M``): channels whose name matches the glob (``*``, ``?``);
- ``!*mask*`` (``N``): channels whose name does not match the glob;
- ``>n`` / ``<n`` (``U``): more / fewer than ``n`` users;
- ``C>n`` / ``C<n`` (``C``): created more / less than ``n`` minutes ago;
- ``T>n`` / ``T<n`` (``T``): topic set more / less than ``n`` minutes ago
  (a channel without a topic never matches a ``T`` item).

A channel is listed when it is one of the named channels or matches one of
the masks (if any of these were given), matches none of the negative masks,
and satisfies every numeric item. An item that is none of these is taken as
a channel name (and so matches nothing unless such a channel exists).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ircd.protocol.casemap import casefold
from ircd.protocol.masks import Glob, compile_mask
from ircd.state import Channel

ELIST = "CMNTU"


@dataclass(slots=True)
class ListFilter:
    """A parsed LIST parameter.

    ``names`` are casefolded channel names, ``masks``/``negative`` globs over
    channel names (``globs``/``negative_globs`` the same, compiled once per
    LIST). ``users`` holds ``(op, n)`` with ``op`` ``">"`` or ``"<"``;
    ``created`` and ``topic`` hold ``(op, minutes)``. :meth:`matches` costs
    one linear-time glob match per mask (:class:`ircd.protocol.masks.Glob`)
    and one set lookup for the names.
    """

    names: list[str] = field(default_factory=list)
    masks: list[str] = field(default_factory=list)
    negative: list[str] = field(default_factory=list)
    users: list[tuple[str, int]] = field(default_factory=list)
    created: list[tuple[str, int]] = field(default_factory=list)
    topic: list[tuple[str, int]] = field(default_factory=list)
    globs: list[Glob] = field(default_factory=list, repr=False, compare=False)
    negative_globs: list[Glob] = field(default_factory=list, repr=False, compare=False)
    name_set: set[str] = field(default_factory=set, repr=False, compare=False)

    def matches(self, chan: Channel, now: float) -> bool:
        """True if ``chan`` passes every item; ``now`` is unix seconds."""
        folded = casefold(chan.name)
        if (self.names or self.masks) and folded not in self.name_set and not any(
                g.match(folded) for g in self.globs):
            return False
        if any(g.match(folded) for g in self.negative_globs):
            return False
        count = len(chan.members)
        if not all(_compare(count, op, n) for op, n in self.users):
            return False
        age = (now - chan.created) / 60
        if not all(_compare(age, op, n) for op, n in self.created):
            return False
        if self.topic:
            if not chan.topic:
                return False
            topic_age = (now - chan.topic_at) / 60
            if not all(_compare(topic_age, op, n) for op, n in self.topic):
                return False
        return True


def _compare(value: float, op: str, n: int) -> bool:
    return value > n if op == ">" else value < n


def _number(text: str) -> int | None:
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 9 else None


def parse_list_filter(arg: str) -> ListFilter:
    """Parse ``LIST``'s parameter (str, as received) into a :class:`ListFilter`; never raises."""
    result = ListFilter()
    for item in arg.split(","):
        if not item:
            continue
        head = item[0]
        if head in "<>" and (n := _number(item[1:])) is not None:
            result.users.append((head, n))
        elif (item[:1] in ("C", "c", "T", "t") and item[1:2] in ("<", ">")
              and (n := _number(item[2:])) is not None):
            target = result.created if item[0] in "Cc" else result.topic
            target.append((item[1], n))
        elif head == "!" and len(item) > 1:
            result.negative.append(item[1:])
            result.negative_globs.append(compile_mask(item[1:]))
        elif "*" in item or "?" in item:
            result.masks.append(item)
            result.globs.append(compile_mask(item))
        else:
            result.names.append(casefold(item))
            result.name_set.add(casefold(item))
    return result
