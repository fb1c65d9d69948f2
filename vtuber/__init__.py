"""vtuber: a fully local AI co-host for live streamers and VTubers."""

__version__ = "0.1.0"
