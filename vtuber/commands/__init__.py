"""The `vtuber` commands: one module each, each with `add(sub)` adding its parser.

A new command is one new module here with an `add(sub)` function (its parser, with
`set_defaults(func=...)`) and one line in `COMMANDS` (the order `vtuber --help` lists them).
"""

COMMANDS = (
    "rehearse",
    "run",
    "auth",
    "devices",
    "bench",
    "redteam",
    "memory",
    "models",
    "tune",
    "persona",
)
