"""`vtuber devices`: sound inputs and outputs."""

from __future__ import annotations

import argparse

from vtuber.commands import common


def cmd_devices(args: argparse.Namespace) -> int:
    from vtuber.devices import devices_table

    common.console.print(devices_table())
    return 0


def add(sub) -> None:
    """Its parser, under `vtuber`."""
    dv = sub.add_parser("devices", help="list sound inputs and outputs (for --mic and --speaker)")
    dv.set_defaults(func=cmd_devices)
