"""A week as a grid: one row per project, one column per day."""
import dataclasses
import datetime as dt

from . import timeutil


@dataclasses.dataclass
class Timesheet:
    days: list        # the seven dates of the week
    projects: list    # the row names, sorted
    cells: dict       # (project, date) -> minutes

    def row_total(self, project):
        return sum(self.cells.get((project, d), 0) for d in self.days)

    def day_total(self, day):
        return sum(self.cells.get((p, day), 0) for p in self.projects)

    def total(self):
        return sum(self.cells.values())


def build(entries, week_of, first_weekday=0, rounding=0, now=None):
    """The timesheet of the week holding WEEK_OF. An entry counts on the day it
    starts; each entry is rounded to ROUNDING minutes."""
    first = timeutil.week_start(week_of, first_weekday)
    days = [first + dt.timedelta(days=i) for i in range(7)]
    cells = {}
    for e in entries:
        day = e.start.date()
        if not first <= day <= days[-1]:
            continue
        key = (e.project, day)
        cells[key] = cells.get(key, 0) + timeutil.round_minutes(e.minutes(now), rounding)
    projects = sorted({p for p, _ in cells})
    return Timesheet(days=days, projects=projects, cells=cells)


def rows(ts, fmt=timeutil.format_duration):
    """Header and rows for render.table/markdown: project, seven days, total;
    a last row of day totals. Empty cells stay empty."""
    header = ["project"] + [f"{d:%a %d}" for d in ts.days] + ["total"]
    out = []
    for p in ts.projects:
        out.append([p] + [fmt(ts.cells[(p, d)]) if (p, d) in ts.cells else "" for d in ts.days]
                   + [fmt(ts.row_total(p))])
    out.append(["total"] + [fmt(ts.day_total(d)) if ts.day_total(d) else "" for d in ts.days]
               + [fmt(ts.total())])
    return header, out


def as_dict(ts):
    return {
        "days": [timeutil.format_date(d) for d in ts.days],
        "projects": {p: {timeutil.format_date(d): ts.cells[(p, d)] for d in ts.days
                         if (p, d) in ts.cells} for p in ts.projects},
        "total_minutes": ts.total(),
    }
