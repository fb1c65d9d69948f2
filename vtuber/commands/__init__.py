"""The `vtuber` commands: one module each, each with `add(sub)` adding its parser.

A new command is one new module here with an `add(sub)` function (its parser, made by
`common.command_parser(sub, NAME, __doc__)`, with `set_defaults(func=...)`) and one line in
`COMMANDS` (the order `vtuber --help` lists them). The module's docstring is what the user reads:
its first paragraph the one-line help, the rest the description of `vtuber NAME --help`.
"""

COMMANDS = (
    "rehearse",
    "run",
    "auth",
    "devices",
    "bench",
    "soak",
    "redteam",
    "quality",
    "memory",
    "models",
    "tune",
    "persona",
)
