"""World operations that several command handlers share, below the handlers.

The handlers in :mod:`ircd.commands` import only the command registry and
these modules, never one another; nothing here imports :mod:`ircd.commands`
(``tests/test_layout.py`` checks both). Each module is one operation on the
world, named after what it does for a user:

- :mod:`~ircd.ops.presence`: MONITOR notifications and who hears of a change
  to a user (``*-notify`` capabilities);
- :mod:`~ircd.ops.login`: logging in and out of an account, creating one, the
  login and registration throttles (SASL, PASS, ``REGISTER``, NickServ);
- :mod:`~ircd.ops.welcome`: becoming a user (the nick-table entry) and the
  welcome burst (001-005, LUSERS, MOTD);
- :mod:`~ircd.ops.membership`: joining a channel, with its topic and NAMES;
- :mod:`~ircd.ops.privileges`: who is an oper, the 481 refusal, the channel
  override and its log;
- :mod:`~ircd.ops.bans`: server bans in force (K-line checks at registration
  and on a nick change, disconnecting who a new ban matches, STATS k/d);
- :mod:`~ircd.ops.batches`: stored messages sent as an IRCv3 batch.
"""
