"""Selecting entries: by date range, project, tag and text."""
import dataclasses
import datetime as dt


@dataclasses.dataclass
class Filter:
    since: dt.date = None  # entries that start on or after this day
    until: dt.date = None  # entries that start on or before this day
    project: str = None    # this project, or its sub-projects (client/site matches client)
    tag: str = None
    text: str = None       # a case-insensitive substring of the task
    running: bool = True   # keep the running entry

    def matches(self, e):
        day = e.start.date()
        if self.since is not None and day < self.since:
            return False
        if self.until is not None and day > self.until:
            return False
        if self.project is not None and not (
                e.project == self.project or e.project.startswith(self.project + "/")):
            return False
        if self.tag is not None and self.tag not in e.tags:
            return False
        if self.text is not None and self.text.lower() not in e.task.lower():
            return False
        if not self.running and e.running:
            return False
        return True


def select(entries, flt):
    """The entries FLT matches, by start time then id."""
    return sorted((e for e in entries if flt.matches(e)), key=lambda e: (e.start, e.id))


def overlapping(entries, now=None):
    """Pairs of entries whose times overlap, for `tasklog check`."""
    ordered = sorted(entries, key=lambda e: (e.start, e.id))
    out = []
    for i, a in enumerate(ordered):
        for b in ordered[i + 1:]:
            if b.start >= (a.end or now or b.start):
                break
            if a.overlaps(b, now):
                out.append((a, b))
    return out
