import datetime as dt
import json
import os
import tempfile
import unittest

from tasklog.model import EntryError
from tasklog.store import Store, StoreError

T = dt.datetime


class StoreTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)
        self.path = os.path.join(self.tmp.name, "sub", "log.json")

    def test_missing_and_empty_files_are_empty_logs(self):
        self.assertEqual(Store(self.path).load().entries, [])
        os.makedirs(os.path.dirname(self.path))
        with open(self.path, "w") as f:
            f.write("\n")
        self.assertEqual(Store(self.path).load().entries, [])

    def test_save_and_load(self):
        s = Store(self.path)
        s.add("a", T(2024, 1, 1, 9), T(2024, 1, 1, 10), "one", ["x"])
        s.add("b", T(2024, 1, 1, 11))
        s.save()
        t = Store(self.path).load()
        self.assertEqual([e.id for e in t.entries], [1, 2])
        self.assertEqual(t.running().project, "b")
        self.assertEqual(t.next_id, 3)

    def test_ids_are_not_reused(self):
        s = Store(self.path)
        s.add("a", T(2024, 1, 1, 9), T(2024, 1, 1, 10))
        s.add("a", T(2024, 1, 1, 10), T(2024, 1, 1, 11))
        s.remove(2)
        s.save()
        t = Store(self.path).load()
        self.assertEqual(t.add("a", T(2024, 1, 2, 9), T(2024, 1, 2, 10)).id, 3)

    def test_one_running_entry(self):
        s = Store(self.path)
        s.add("a", T(2024, 1, 1, 9))
        with self.assertRaises(EntryError):
            s.add("b", T(2024, 1, 1, 10))

    def test_damaged_file_is_kept(self):
        os.makedirs(os.path.dirname(self.path))
        with open(self.path, "w") as f:
            f.write('{"entries": [')
        with self.assertRaises(StoreError) as cm:
            Store(self.path).load()
        self.assertIn("not valid JSON", str(cm.exception))
        with open(self.path) as f:
            self.assertEqual(f.read(), '{"entries": [')

    def test_wrong_shapes(self):
        os.makedirs(os.path.dirname(self.path))
        for text in ('[]', '{"entries": 3}', '{"entries": [{"id": 1}]}',
                     '{"version": 99, "entries": []}'):
            with open(self.path, "w") as f:
                f.write(text)
            with self.assertRaises(StoreError, msg=text):
                Store(self.path).load()

    def test_file_format(self):
        s = Store(self.path)
        s.add("a", T(2024, 1, 1, 9), T(2024, 1, 1, 9, 30), "t", ["z", "y"])
        s.save()
        with open(self.path) as f:
            data = json.load(f)
        self.assertEqual(data["version"], 1)
        self.assertEqual(data["entries"][0], {"id": 1, "project": "a", "task": "t", "tags": ["y", "z"],
                                              "start": "2024-01-01 09:00", "end": "2024-01-01 09:30"})

    def test_no_temporary_files_left(self):
        s = Store(self.path)
        s.add("a", T(2024, 1, 1, 9), T(2024, 1, 1, 10))
        s.save()
        s.save()
        self.assertEqual(os.listdir(os.path.dirname(self.path)), ["log.json"])


if __name__ == "__main__":
    unittest.main()
