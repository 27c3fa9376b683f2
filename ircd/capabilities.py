"""The IRCv3 capabilities this server offers, and what each changes on the wire.

Each one is implemented fully, as its specification at ircv3.net says (WeeChat
requests every capability it knows in one ``CAP REQ``, so a half-done one
would break its whole negotiation). ``CAP LS 302`` shows the values.
"""

from __future__ import annotations

from collections.abc import Collection

# name -> value shown by CAP LS 302 (None: no value)
CAPABILITIES: dict[str, str | None] = {
    "account-notify": None,        # ACCOUNT when a user logs in after registration
    "account-tag": None,           # @account=<name> on messages from logged-in users
    "away-notify": None,           # AWAY lines from channel peers
    "batch": None,                 # BATCH framing (labeled-response, chathistory)
    "cap-notify": None,            # CAP NEW/DEL (the list never changes at run time)
    "chghost": None,               # CHGHOST (hosts never change here, so never sent)
    "draft/account-registration": None,  # REGISTER/VERIFY (ircd/commands/account_registration.py)
    "draft/chathistory": None,     # CHATHISTORY (limits in ISUPPORT CHATHISTORY=)
    "echo-message": None,          # your own PRIVMSG/NOTICE/TAGMSG come back to you
    "extended-join": None,         # JOIN #chan <account> :<realname>
    "extended-monitor": None,      # AWAY/ACCOUNT/SETNAME also for nicks you MONITOR
    "invite-notify": None,         # INVITE lines to channel members
    "labeled-response": None,      # @label echoed on the command's reply (ACK / BATCH)
    "message-tags": None,          # client tags (+name), TAGMSG, @msgid
    "multi-prefix": None,          # every prefix in NAMES/WHO/WHOIS
    "sasl": "PLAIN",               # AUTHENTICATE PLAIN
    "server-time": None,           # @time= on relayed messages
    "setname": None,               # SETNAME
    "userhost-in-names": None,     # nick!user@host in NAMES
    "znc.in/self-message": None,   # messages you send to yourself come back with your source
}

# Bits of Session.tagmask: which tags a session gets on relayed messages.
TAG_MESSAGE_TAGS = 1   # msgid and client-only tags
TAG_SERVER_TIME = 2    # time
TAG_ACCOUNT = 4        # account


def tagmask(caps: Collection[str]) -> int:
    """The tag bits for a client with ``caps`` enabled."""
    mask = 0
    if "message-tags" in caps:
        mask |= TAG_MESSAGE_TAGS
    if "server-time" in caps:
        mask |= TAG_SERVER_TIME
    if "account-tag" in caps:
        mask |= TAG_ACCOUNT
    return mask
