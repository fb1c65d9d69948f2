"""list sound inputs and outputs (for --mic and --speaker)"""

from __future__ import annotations

import argparse

from vtuber.commands import common


def cmd_devices(args: argparse.Namespace) -> int:
    from vtuber.devices import devices_table

    common.console.print(devices_table())
    return 0


def add(sub) -> None:
    """Its parser, under `vtuber`."""
    dv = common.command_parser(sub, "devices", __doc__)
    dv.set_defaults(func=cmd_devices)
