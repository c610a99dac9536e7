"""Times and durations as tasklog writes them.

Times are naive local datetimes at minute resolution, written
"YYYY-MM-DD HH:MM". Durations are whole minutes, written "2h05m".
The current time can be fixed with TASKLOG_NOW (for scripts and tests).
"""
import datetime as dt
import os
import re

TIME_FORMAT = "%Y-%m-%d %H:%M"
DATE_FORMAT = "%Y-%m-%d"

WEEKDAYS = {
    "monday": 0, "tuesday": 1, "wednesday": 2, "thursday": 3,
    "friday": 4, "saturday": 5, "sunday": 6,
}

_CLOCK = re.compile(r"^(\d{1,2}):(\d{2})$")
_FULL = re.compile(r"^(\d{4}-\d{2}-\d{2})[ T](\d{1,2}):(\d{2})$")
_RELATIVE = re.compile(r"^-(\d+)(m|h)$")
_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?$")


class TimeError(ValueError):
    """A time, date or duration that cannot be read; the message says which."""


def now():
    """The current time, to the minute (TASKLOG_NOW overrides it)."""
    fixed = os.environ.get("TASKLOG_NOW")
    if fixed:
        try:
            return parse_time(fixed, today=None)
        except TimeError as e:
            raise TimeError(f"TASKLOG_NOW: {e}") from None
    return dt.datetime.now().replace(second=0, microsecond=0)


def today():
    return now().date()


def parse_date(text, base=None):
    """A date from 'YYYY-MM-DD', 'today' or 'yesterday' (relative to BASE,
    default today)."""
    text = text.strip().lower()
    base = base or today()
    if text == "today":
        return base
    if text == "yesterday":
        return base - dt.timedelta(days=1)
    try:
        d = dt.datetime.strptime(text, DATE_FORMAT).date()
    except ValueError:
        raise TimeError(f"not a date (YYYY-MM-DD, today or yesterday): {text!r}") from None
    return d


def parse_time(text, today=None):
    """A time from 'YYYY-MM-DD HH:MM' (or with a T), 'HH:MM' (on TODAY, default
    the current date) or '-90m' / '-2h' (before the current time)."""
    text = text.strip()
    m = _FULL.match(text)
    if m:
        return _make(m.group(1), int(m.group(2)), int(m.group(3)), text)
    m = _CLOCK.match(text)
    if m:
        day = today if today is not None else now().date()
        return _make(day.strftime(DATE_FORMAT), int(m.group(1)), int(m.group(2)), text)
    m = _RELATIVE.match(text)
    if m:
        n = int(m.group(1)) * (60 if m.group(2) == "h" else 1)
        return now() - dt.timedelta(minutes=n)
    raise TimeError(f"not a time (YYYY-MM-DD HH:MM, HH:MM or -30m): {text!r}")


def _make(day, hour, minute, text):
    try:
        d = dt.datetime.strptime(day, DATE_FORMAT)
    except ValueError:
        raise TimeError(f"not a date: {text!r}") from None
    if not (0 <= hour <= 23 and 0 <= minute <= 59):
        raise TimeError(f"not a time of day: {text!r}")
    return d.replace(hour=hour, minute=minute)


def format_time(t):
    return t.strftime(TIME_FORMAT)


def format_date(d):
    return d.strftime(DATE_FORMAT)


def minutes_between(start, end):
    """Whole minutes from START to END (negative when END is earlier)."""
    return int((end - start).total_seconds() // 60)


def format_duration(minutes):
    """'2h05m', '45m', '0m'; negative durations get a leading '-'."""
    sign = "-" if minutes < 0 else ""
    minutes = abs(int(minutes))
    h, m = divmod(minutes, 60)
    if h:
        return f"{sign}{h}h{m:02d}m"
    return f"{sign}{m}m"


def parse_duration(text):
    """Minutes from '1h30m', '90m', '2h'; TimeError otherwise."""
    m = _DURATION.match(text.strip())
    if not m or not (m.group(1) or m.group(2)):
        raise TimeError(f"not a duration (like 1h30m or 45m): {text!r}")
    return int(m.group(1) or 0) * 60 + int(m.group(2) or 0)


def round_minutes(minutes, step):
    """MINUTES rounded to the nearest multiple of STEP (halves up); STEP 0 or 1
    leaves it alone."""
    if step <= 1:
        return minutes
    return (minutes + step // 2) // step * step


def week_start(day, first_weekday):
    """The first day of the week that holds DAY, weeks starting on
    FIRST_WEEKDAY (0 = Monday)."""
    return day - dt.timedelta(days=(day.weekday() - first_weekday) % 7)


def days(since, until):
    """Every date from SINCE to UNTIL, both included."""
    d = since
    while d <= until:
        yield d
        d += dt.timedelta(days=1)
