"""Exporting entries for other programs.

Each format is a function (entries, out) writing the finished entries (the
running one is left out) to the text stream OUT. FORMATS maps the names that
`tasklog export --format` accepts to them.
"""
import json

from . import timeutil


def entry_record(e):
    """The fields of a finished entry as exported."""
    return {
        "id": e.id,
        "start": timeutil.format_time(e.start),
        "end": timeutil.format_time(e.end),
        "minutes": e.minutes(),
        "project": e.project,
        "task": e.task,
        "tags": list(e.tags),
    }


def export_json(entries, out):
    """A JSON array of the entries' records, one entry per line."""
    records = [entry_record(e) for e in entries if not e.running]
    out.write("[")
    for i, r in enumerate(records):
        out.write("\n " if i == 0 else ",\n ")
        out.write(json.dumps(r, ensure_ascii=False))
    out.write("\n]\n" if records else "]\n")


def export_markdown(entries, out):
    """A Markdown table, for pasting into notes or issues."""
    from .render import markdown

    rows = []
    for e in entries:
        if e.running:
            continue
        rows.append([timeutil.format_time(e.start), timeutil.format_time(e.end),
                     timeutil.format_duration(e.minutes()), e.project, e.task,
                     " ".join("#" + t for t in e.tags)])
    out.write(markdown(["start", "end", "time", "project", "task", "tags"], rows, "lllll") + "\n")


FORMATS = {
    "json": export_json,
    "markdown": export_markdown,
}
