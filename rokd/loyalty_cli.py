"""``rokd loyalty``: kept so that ``rokd.cli`` (and older imports) find the command.

The command lives in :mod:`rokd.loyalty.cli`.
"""

from rokd.loyalty.cli import _cmd_loyalty, register

__all__ = ["_cmd_loyalty", "register"]
