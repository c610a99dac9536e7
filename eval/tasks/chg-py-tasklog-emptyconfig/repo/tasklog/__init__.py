"""tasklog: track the time you spend on tasks, from the terminal."""

__version__ = "0.9.2"
