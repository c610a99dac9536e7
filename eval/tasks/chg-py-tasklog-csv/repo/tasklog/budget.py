"""Time budgets per project, from the [budgets] table of the config:

    [budgets]
    acme = "40h"
    "acme/site" = "12h30m"

A project's time includes its sub-projects (acme counts acme/site).
"""
import dataclasses

from . import timeutil


@dataclasses.dataclass
class Usage:
    project: str
    budget: int  # minutes
    used: int    # minutes

    @property
    def remaining(self):
        return self.budget - self.used

    @property
    def percent(self):
        return 100 * self.used // self.budget if self.budget else 0

    @property
    def over(self):
        return self.used > self.budget


def usage(entries, budgets, rounding=0, now=None):
    """[Usage] for every project in BUDGETS ({project: minutes}), by name."""
    out = []
    for project in sorted(budgets):
        used = 0
        for e in entries:
            if e.project == project or e.project.startswith(project + "/"):
                used += timeutil.round_minutes(e.minutes(now), rounding)
        out.append(Usage(project, budgets[project], used))
    return out


def bar(u, width=20):
    """A text bar of how much of the budget is used: [#######.....]."""
    filled = min(width, width * u.used // u.budget) if u.budget else width
    return "[" + "#" * filled + "." * (width - filled) + "]"
