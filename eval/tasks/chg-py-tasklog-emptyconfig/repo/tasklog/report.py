"""Totals of time by project, tag, day or week."""
import collections

from . import timeutil

UNTAGGED = "(untagged)"


def entry_minutes(e, rounding, now):
    return timeutil.round_minutes(e.minutes(now), rounding)


def group_key(e, by, week_start):
    """The keys an entry counts under (a tagged entry counts under each tag)."""
    if by == "project":
        return [e.project]
    if by == "tag":
        return list(e.tags) or [UNTAGGED]
    if by == "day":
        return [timeutil.format_date(e.start.date())]
    if by == "week":
        return [timeutil.format_date(timeutil.week_start(e.start.date(), week_start))]
    raise ValueError(f"cannot group by {by!r}")


def totals(entries, by="project", rounding=0, week_start=0, now=None):
    """[(key, minutes, count)] sorted by key: the minutes of the entries per
    key (each entry rounded to ROUNDING minutes) and how many entries."""
    minutes = collections.Counter()
    count = collections.Counter()
    for e in entries:
        m = entry_minutes(e, rounding, now)
        for key in group_key(e, by, week_start):
            minutes[key] += m
            count[key] += 1
    return [(k, minutes[k], count[k]) for k in sorted(minutes)]


def grand_total(entries, rounding=0, now=None):
    return sum(entry_minutes(e, rounding, now) for e in entries)


def daily_average(entries, since, until, rounding=0, now=None):
    """Minutes per day over the days from SINCE to UNTIL that have entries."""
    days = {e.start.date() for e in entries if since <= e.start.date() <= until}
    if not days:
        return 0
    return grand_total(entries, rounding, now) // len(days)
