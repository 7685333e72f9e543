"""``rokd loyalty``: kept for older imports.

The command lives in :mod:`rokd.loyalty.cli`.
"""

from rokd.loyalty.cli import _cmd_loyalty, register

__all__ = ["_cmd_loyalty", "register"]
