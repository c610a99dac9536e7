import datetime as dt
import unittest

from tasklog import query, report
from tasklog.model import Entry

T = dt.datetime


def entries():
    return [
        Entry(1, "acme", T(2024, 3, 4, 9, 0), T(2024, 3, 4, 10, 7), "design", ["meeting"]),
        Entry(2, "acme/site", T(2024, 3, 4, 10, 30), T(2024, 3, 4, 12, 0), "css", ["dev"]),
        Entry(3, "home", T(2024, 3, 5, 18, 0), T(2024, 3, 5, 18, 20), "taxes"),
        Entry(4, "acme", T(2024, 3, 11, 9, 0), T(2024, 3, 11, 9, 52), "Design review", ["meeting", "dev"]),
        Entry(5, "home", T(2024, 3, 11, 20, 0), None, "reading"),
    ]


NOW = T(2024, 3, 11, 20, 30)


class Select(unittest.TestCase):
    def ids(self, **kw):
        return [e.id for e in query.select(entries(), query.Filter(**kw))]

    def test_dates(self):
        self.assertEqual(self.ids(since=dt.date(2024, 3, 5)), [3, 4, 5])
        self.assertEqual(self.ids(until=dt.date(2024, 3, 5)), [1, 2, 3])
        self.assertEqual(self.ids(since=dt.date(2024, 3, 5), until=dt.date(2024, 3, 5)), [3])

    def test_project_includes_sub_projects(self):
        self.assertEqual(self.ids(project="acme"), [1, 2, 4])
        self.assertEqual(self.ids(project="acme/site"), [2])
        self.assertEqual(self.ids(project="acm"), [])

    def test_tag_text_running(self):
        self.assertEqual(self.ids(tag="dev"), [2, 4])
        self.assertEqual(self.ids(text="design"), [1, 4])
        self.assertEqual(self.ids(running=False), [1, 2, 3, 4])

    def test_overlapping(self):
        es = entries() + [Entry(6, "x", T(2024, 3, 4, 11, 0), T(2024, 3, 4, 11, 30))]
        pairs = [(a.id, b.id) for a, b in query.overlapping(es, NOW)]
        self.assertEqual(pairs, [(2, 6)])


class Totals(unittest.TestCase):
    def test_by_project(self):
        got = report.totals(entries(), "project", now=NOW)
        self.assertEqual(got, [("acme", 67 + 52, 2), ("acme/site", 90, 1), ("home", 20 + 30, 2)])

    def test_by_tag_counts_each_tag(self):
        got = dict((k, m) for k, m, _ in report.totals(entries(), "tag", now=NOW))
        self.assertEqual(got, {"dev": 90 + 52, "meeting": 67 + 52, report.UNTAGGED: 50})

    def test_by_day_and_week(self):
        days = report.totals(entries(), "day", now=NOW)
        self.assertEqual([k for k, _, _ in days], ["2024-03-04", "2024-03-05", "2024-03-11"])
        weeks = report.totals(entries(), "week", week_start=0, now=NOW)
        self.assertEqual([(k, n) for k, _, n in weeks], [("2024-03-04", 3), ("2024-03-11", 2)])
        sunday = report.totals(entries(), "week", week_start=6, now=NOW)
        self.assertEqual([k for k, _, _ in sunday], ["2024-03-03", "2024-03-10"])

    def test_rounding_per_entry(self):
        got = report.totals(entries(), "project", rounding=15, now=NOW)
        self.assertEqual(got[0], ("acme", 60 + 45, 2))
        self.assertEqual(report.grand_total(entries(), 15, NOW), 60 + 90 + 15 + 45 + 30)

    def test_unknown_grouping(self):
        with self.assertRaises(ValueError):
            report.totals(entries(), "month", now=NOW)

    def test_daily_average(self):
        es = [e for e in entries() if not e.running]
        self.assertEqual(report.daily_average(es, dt.date(2024, 3, 1), dt.date(2024, 3, 31)),
                         (67 + 90 + 20 + 52) // 3)
        self.assertEqual(report.daily_average([], dt.date(2024, 3, 1), dt.date(2024, 3, 31)), 0)


if __name__ == "__main__":
    unittest.main()
