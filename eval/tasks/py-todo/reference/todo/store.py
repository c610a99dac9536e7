"""The to-do list on disk: a JSON object {"next_id": N, "items": [...]}.

load() reads it (a missing file is an empty list), save() replaces it
atomically. Items are dicts with id, text, done, due (YYYY-MM-DD or None) and
tags (a list of strings).
"""
import datetime
import json
import os
import tempfile


class StoreError(Exception):
    """A list file that cannot be read, parsed or written; the message says which."""


def default_path():
    return os.environ.get("TODO_DB") or os.path.join(os.path.expanduser("~"), ".todo.json")


def parse_date(text):
    """TEXT as a date if it is a real YYYY-MM-DD date; ValueError otherwise."""
    try:
        d = datetime.date.fromisoformat(text)
    except (TypeError, ValueError):
        raise ValueError(f"not a date (YYYY-MM-DD): {text!r}") from None
    if len(text) != 10:
        raise ValueError(f"not a date (YYYY-MM-DD): {text!r}")
    return d


class TodoList:
    def __init__(self, path):
        self.path = path
        self.next_id = 1
        self.items = []

    def load(self):
        try:
            with open(self.path, encoding="utf-8") as f:
                data = json.load(f)
        except FileNotFoundError:
            return self
        except (OSError, ValueError) as e:
            raise StoreError(f"cannot read the list {self.path}: {e}") from None
        if not isinstance(data, dict) or not isinstance(data.get("items"), list):
            raise StoreError(f"{self.path} is not a to-do list file")
        self.items = data["items"]
        self.next_id = int(data.get("next_id", 1))
        return self

    def save(self):
        folder = os.path.dirname(os.path.abspath(self.path))
        fd, tmp = tempfile.mkstemp(prefix=".todo-", dir=folder)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump({"next_id": self.next_id, "items": self.items}, f,
                          ensure_ascii=False, indent=1)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except OSError as e:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise StoreError(f"cannot write the list {self.path}: {e}") from None

    def add(self, text, due=None, tags=()):
        item = {"id": self.next_id, "text": text, "done": False, "due": due, "tags": list(tags)}
        self.items.append(item)
        self.next_id += 1
        return item

    def get(self, item_id):
        for it in self.items:
            if it["id"] == item_id:
                return it
        raise KeyError(item_id)

    def remove(self, item_id):
        self.items.remove(self.get(item_id))

    def select(self, all_items=False, tag=None, overdue_on=None):
        out = []
        for it in sorted(self.items, key=lambda i: i["id"]):
            if it["done"] and (not all_items or overdue_on is not None):
                continue
            if tag is not None and tag not in it["tags"]:
                continue
            if overdue_on is not None and not (it["due"] and it["due"] < overdue_on):
                continue
            out.append(it)
        return out
