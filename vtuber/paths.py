"""Where things live: what the package ships, and the user's own folder.

- Bundled: the personas, plugins and demo inputs ship inside the package
  (`vtuber/bundled/`, which the repository's top-level `personas/`, `plugins/` and
  `audio/` folders provide) and are found with `importlib.resources`, so an installed
  wheel works from any folder.
- The user's own personas and plugins live in the user config dir (platformdirs:
  `~/.config/vtuber` on Linux, respecting `XDG_CONFIG_HOME`), plus any folder named in
  the config. Nothing the program writes ever goes into the installed package.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import platformdirs

APP = "vtuber"


def bundled(name: str) -> Path:
    """A folder the package ships: "personas", "plugins" or "audio"."""
    return Path(str(files("vtuber") / "bundled" / name))


def user_dir() -> Path:
    """The user's config folder (not created here)."""
    return platformdirs.user_config_path(APP, appauthor=False)


def user_personas() -> Path:
    return user_dir() / "personas"


def user_plugins() -> Path:
    return user_dir() / "plugins"


def user_cache() -> Path:
    """The user's cache folder (platformdirs: `~/.cache/vtuber` on Linux, respecting
    `XDG_CACHE_HOME`): files made once from what the packages ship (not created here)."""
    return platformdirs.user_cache_path(APP, appauthor=False)
