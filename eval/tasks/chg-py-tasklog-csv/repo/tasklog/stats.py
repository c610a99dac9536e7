"""Habits over a period: days worked, streaks, the busiest day and weekday."""
import collections
import dataclasses
import datetime as dt

from . import timeutil


@dataclasses.dataclass
class Stats:
    days_worked: int
    total: int               # minutes
    average: int             # minutes per day worked
    longest_streak: int      # consecutive days with time
    busiest_day: dt.date = None
    busiest_minutes: int = 0
    by_weekday: dict = dataclasses.field(default_factory=dict)  # 0..6 -> minutes


def compute(entries, since, until, now=None):
    """The statistics of the entries starting from SINCE to UNTIL (included)."""
    per_day = collections.Counter()
    for e in entries:
        d = e.start.date()
        if since <= d <= until:
            per_day[d] += e.minutes(now)
    worked = sorted(d for d, m in per_day.items() if m > 0)
    streak = best = 0
    prev = None
    for d in worked:
        streak = streak + 1 if prev is not None and d - prev == dt.timedelta(days=1) else 1
        best = max(best, streak)
        prev = d
    total = sum(per_day.values())
    st = Stats(days_worked=len(worked), total=total,
               average=total // len(worked) if worked else 0, longest_streak=best)
    if worked:
        st.busiest_day = max(worked, key=lambda d: (per_day[d], -d.toordinal()))
        st.busiest_minutes = per_day[st.busiest_day]
    for d, m in per_day.items():
        st.by_weekday[d.weekday()] = st.by_weekday.get(d.weekday(), 0) + m
    return st


def weekday_name(n):
    return ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"][n]


def describe(st):
    """Lines of text for `tasklog stats`."""
    if not st.days_worked:
        return ["no time recorded in this period"]
    out = [
        f"days worked:     {st.days_worked}",
        f"total:           {timeutil.format_duration(st.total)}",
        f"per day worked:  {timeutil.format_duration(st.average)}",
        f"longest streak:  {st.longest_streak} day" + ("s" if st.longest_streak != 1 else ""),
        f"busiest day:     {timeutil.format_date(st.busiest_day)} "
        f"({timeutil.format_duration(st.busiest_minutes)})",
    ]
    top = max(st.by_weekday.items(), key=lambda kv: (kv[1], -kv[0]))
    out.append(f"busiest weekday: {weekday_name(top[0])} ({timeutil.format_duration(top[1])})")
    return out
