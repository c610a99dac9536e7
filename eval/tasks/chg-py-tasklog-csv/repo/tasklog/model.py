"""Entries: one stretch of time spent on a task of a project."""
import dataclasses
import datetime as dt
import re

from . import timeutil

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-/]*$")
MAX_TASK = 200


class EntryError(ValueError):
    """An entry that is not valid; the message says why."""


def check_project(name):
    """NAME if it is a valid project name (letters, digits, _ . - /, starting
    with a letter or digit); EntryError otherwise."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise EntryError(f"a project name is letters, digits and _ . - /, not {name!r}")
    return name


def check_tag(tag):
    tag = tag[1:] if isinstance(tag, str) and tag.startswith("#") else tag
    if not isinstance(tag, str) or not _NAME.match(tag):
        raise EntryError(f"a tag is letters, digits and _ . - /, not {tag!r}")
    return tag


def check_task(text):
    if not isinstance(text, str):
        raise EntryError("a task is text")
    text = " ".join(text.split())
    if len(text) > MAX_TASK:
        raise EntryError(f"a task is at most {MAX_TASK} characters")
    return text


@dataclasses.dataclass
class Entry:
    id: int
    project: str
    start: dt.datetime
    end: dt.datetime = None
    task: str = ""
    tags: list = dataclasses.field(default_factory=list)

    def __post_init__(self):
        self.project = check_project(self.project)
        self.task = check_task(self.task)
        self.tags = sorted({check_tag(t) for t in self.tags})
        if self.end is not None and self.end < self.start:
            raise EntryError(
                f"an entry cannot end ({timeutil.format_time(self.end)}) "
                f"before it starts ({timeutil.format_time(self.start)})")

    @property
    def running(self):
        return self.end is None

    def minutes(self, now=None):
        """The length of the entry; a running entry counts up to NOW."""
        end = self.end if self.end is not None else (now or timeutil.now())
        return max(0, timeutil.minutes_between(self.start, end))

    def overlaps(self, other, now=None):
        a_end = self.end or now or timeutil.now()
        b_end = other.end or now or timeutil.now()
        return self.start < b_end and other.start < a_end

    def to_dict(self):
        return {
            "id": self.id,
            "project": self.project,
            "task": self.task,
            "tags": list(self.tags),
            "start": timeutil.format_time(self.start),
            "end": timeutil.format_time(self.end) if self.end else None,
        }

    @classmethod
    def from_dict(cls, d):
        """An entry from its stored form; EntryError when a field is wrong."""
        try:
            start = timeutil.parse_time(d["start"], today=None)
            end = timeutil.parse_time(d["end"], today=None) if d.get("end") else None
            return cls(id=int(d["id"]), project=d["project"], start=start, end=end,
                       task=d.get("task", ""), tags=list(d.get("tags", [])))
        except (KeyError, TypeError) as e:
            raise EntryError(f"a stored entry lacks a field or has a wrong one: {e}") from None
        except ValueError as e:  # a time, an id or a name that is wrong
            raise EntryError(f"a stored entry is wrong: {e}") from None
