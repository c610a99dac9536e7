import os
import tempfile
import unittest

from todo.store import StoreError, TodoList, parse_date


class StoreTest(unittest.TestCase):
    def test_round_trip_and_ids(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "l.json")
            t = TodoList(path).load()
            t.add("a")
            t.add("b", "2024-01-01", ["x"])
            t.remove(1)
            t.save()
            u = TodoList(path).load()
            self.assertEqual([i["id"] for i in u.items], [2])
            self.assertEqual(u.add("c")["id"], 3)

    def test_bad_file(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "l.json")
            with open(path, "w") as f:
                f.write("[1, 2")
            with self.assertRaises(StoreError):
                TodoList(path).load()

    def test_dates(self):
        parse_date("2024-02-29")
        for bad in ("2023-02-29", "2024-1-1", "tomorrow"):
            with self.assertRaises(ValueError):
                parse_date(bad)


if __name__ == "__main__":
    unittest.main()
