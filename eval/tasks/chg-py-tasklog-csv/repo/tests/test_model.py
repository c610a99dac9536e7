import datetime as dt
import unittest

from tasklog.model import Entry, EntryError, check_project, check_tag

T = dt.datetime


class Names(unittest.TestCase):
    def test_projects(self):
        for good in ("acme", "acme/site", "v2.0", "a_b-c"):
            self.assertEqual(check_project(good), good)
        for bad in ("", "two words", "/abs", "-x", "café#1", None):
            with self.assertRaises(EntryError, msg=bad):
                check_project(bad)

    def test_tags_lose_a_hash(self):
        self.assertEqual(check_tag("#meeting"), "meeting")
        with self.assertRaises(EntryError):
            check_tag("two words")


class Entries(unittest.TestCase):
    def test_minutes(self):
        e = Entry(1, "p", T(2024, 1, 1, 9, 0), T(2024, 1, 1, 10, 30))
        self.assertEqual(e.minutes(), 90)
        r = Entry(2, "p", T(2024, 1, 1, 9, 0))
        self.assertTrue(r.running)
        self.assertEqual(r.minutes(now=T(2024, 1, 1, 9, 20)), 20)

    def test_end_before_start(self):
        with self.assertRaises(EntryError):
            Entry(1, "p", T(2024, 1, 1, 10, 0), T(2024, 1, 1, 9, 0))

    def test_tags_sorted_unique_and_task_squeezed(self):
        e = Entry(1, "p", T(2024, 1, 1, 9, 0), None, "  fix   the\tbug ", ["b", "a", "#b"])
        self.assertEqual(e.tags, ["a", "b"])
        self.assertEqual(e.task, "fix the bug")

    def test_round_trip(self):
        e = Entry(7, "acme/site", T(2024, 1, 1, 9, 0), T(2024, 1, 1, 9, 45), "x", ["t"])
        self.assertEqual(Entry.from_dict(e.to_dict()), e)

    def test_from_dict_errors(self):
        for bad in ({}, {"id": 1, "project": "p"}, {"id": 1, "project": "p", "start": "nope"},
                    {"id": "x", "project": "p", "start": "2024-01-01 10:00"}):
            with self.assertRaises((EntryError, ValueError), msg=bad):
                Entry.from_dict(bad)

    def test_overlaps(self):
        a = Entry(1, "p", T(2024, 1, 1, 9, 0), T(2024, 1, 1, 10, 0))
        b = Entry(2, "p", T(2024, 1, 1, 9, 59), T(2024, 1, 1, 11, 0))
        c = Entry(3, "p", T(2024, 1, 1, 10, 0), T(2024, 1, 1, 11, 0))
        self.assertTrue(a.overlaps(b))
        self.assertFalse(a.overlaps(c))


if __name__ == "__main__":
    unittest.main()
