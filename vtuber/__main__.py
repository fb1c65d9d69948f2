"""`python -m vtuber`: the same as the `vtuber` command."""

from vtuber.cli import entry

entry()
