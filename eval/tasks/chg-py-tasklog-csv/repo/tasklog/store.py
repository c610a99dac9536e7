"""The log on disk: one JSON file, replaced atomically on every save.

    {"version": 1, "next_id": 7, "entries": [{"id": 1, "project": ..., ...}]}

Ids are never reused. At most one entry is running (has no end).
"""
import json
import os
import tempfile

from .model import Entry, EntryError

VERSION = 1


class StoreError(Exception):
    """A log file that cannot be read or written; the message says which."""


class Store:
    def __init__(self, path):
        self.path = path
        self.entries = []
        self.next_id = 1

    def load(self):
        """Reads the log; a missing file is an empty log."""
        try:
            with open(self.path, encoding="utf-8") as f:
                text = f.read()
        except FileNotFoundError:
            return self
        except OSError as e:
            raise StoreError(f"cannot read the log {self.path}: {e.strerror}") from None
        if not text.strip():
            return self
        try:
            data = json.loads(text)
        except ValueError as e:
            raise StoreError(f"the log {self.path} is not valid JSON ({e}); "
                             "fix it or move it away, tasklog will not overwrite it") from None
        if not isinstance(data, dict) or not isinstance(data.get("entries"), list):
            raise StoreError(f"{self.path} is not a tasklog file")
        if data.get("version", VERSION) > VERSION:
            raise StoreError(f"{self.path} was written by a newer tasklog (format "
                             f"{data['version']}); upgrade tasklog to read it")
        try:
            self.entries = [Entry.from_dict(d) for d in data["entries"]]
        except EntryError as e:
            raise StoreError(f"{self.path}: {e}") from None
        self.next_id = max([int(data.get("next_id", 1))] + [e.id + 1 for e in self.entries])
        return self

    def save(self):
        folder = os.path.dirname(os.path.abspath(self.path))
        try:
            os.makedirs(folder, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".tasklog-", suffix=".json", dir=folder)
        except OSError as e:
            raise StoreError(f"cannot write the log in {folder}: {e.strerror}") from None
        data = {"version": VERSION, "next_id": self.next_id,
                "entries": [e.to_dict() for e in sorted(self.entries, key=lambda e: e.id)]}
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(data, f, ensure_ascii=False, indent=1)
                f.write("\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except OSError as e:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise StoreError(f"cannot write the log {self.path}: {e.strerror}") from None

    def add(self, project, start, end=None, task="", tags=()):
        """A new entry with the next id; EntryError when it is not valid."""
        entry = Entry(id=self.next_id, project=project, start=start, end=end, task=task,
                      tags=list(tags))
        if entry.running and self.running() is not None:
            raise EntryError(f"entry {self.running().id} is already running; stop it first")
        self.entries.append(entry)
        self.next_id += 1
        return entry

    def get(self, entry_id):
        for e in self.entries:
            if e.id == entry_id:
                return e
        raise KeyError(entry_id)

    def remove(self, entry_id):
        self.entries.remove(self.get(entry_id))

    def running(self):
        for e in self.entries:
            if e.running:
                return e
        return None

    def sorted(self):
        """The entries by start time (then id)."""
        return sorted(self.entries, key=lambda e: (e.start, e.id))

    def projects(self):
        return sorted({e.project for e in self.entries})
