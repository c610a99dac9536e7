import datetime as dt
import json
import unittest

from tasklog import budget, timesheet
from tasklog.model import Entry
from tests.helpers import CliCase

T = dt.datetime


def entries():
    return [
        Entry(1, "acme", T(2024, 3, 4, 9, 0), T(2024, 3, 4, 10, 0)),
        Entry(2, "acme/site", T(2024, 3, 4, 11, 0), T(2024, 3, 4, 11, 40)),
        Entry(3, "home", T(2024, 3, 6, 20, 0), T(2024, 3, 6, 20, 10)),
        Entry(4, "acme", T(2024, 3, 10, 9, 0), T(2024, 3, 10, 9, 30)),
        Entry(5, "acme", T(2024, 3, 11, 9, 0), T(2024, 3, 11, 12, 0)),
    ]


class Grid(unittest.TestCase):
    def test_build(self):
        ts = timesheet.build(entries(), dt.date(2024, 3, 6))
        self.assertEqual(ts.days[0], dt.date(2024, 3, 4))
        self.assertEqual(ts.projects, ["acme", "acme/site", "home"])
        self.assertEqual(ts.row_total("acme"), 90)
        self.assertEqual(ts.day_total(dt.date(2024, 3, 4)), 100)
        self.assertEqual(ts.total(), 140)

    def test_week_start_moves_entries(self):
        ts = timesheet.build(entries(), dt.date(2024, 3, 6), first_weekday=6)
        self.assertEqual(ts.days[0], dt.date(2024, 3, 3))
        self.assertEqual(ts.total(), 110)

    def test_rows(self):
        ts = timesheet.build(entries(), dt.date(2024, 3, 6))
        header, rows = timesheet.rows(ts)
        self.assertEqual(len(header), 9)
        self.assertEqual(header[1], "Mon 04")
        self.assertEqual(rows[0][0], "acme")
        self.assertEqual(rows[0][1], "1h00m")
        self.assertEqual(rows[0][2], "")
        self.assertEqual(rows[-1][-1], "2h20m")

    def test_as_dict(self):
        d = timesheet.as_dict(timesheet.build(entries(), dt.date(2024, 3, 6)))
        self.assertEqual(d["projects"]["home"], {"2024-03-06": 10})
        self.assertEqual(d["total_minutes"], 140)


class Budgets(unittest.TestCase):
    def test_usage_counts_sub_projects(self):
        got = budget.usage(entries(), {"acme": 300, "home": 5})
        self.assertEqual([(u.project, u.used, u.remaining) for u in got],
                         [("acme", 60 + 40 + 30 + 180, -10), ("home", 10, -5)])
        self.assertTrue(got[0].over)
        self.assertEqual(got[0].percent, 103)

    def test_bar(self):
        self.assertEqual(budget.bar(budget.Usage("a", 100, 50), width=10), "[#####.....]")
        self.assertEqual(budget.bar(budget.Usage("a", 100, 500), width=4), "[####]")


class Commands(CliCase):
    def test_timesheet_command(self):
        self.add("acme", "2024-03-04 09:00", "2024-03-04 10:00")
        self.add("home", "2024-03-06 20:00", "2024-03-06 20:10")
        out = self.ok("timesheet")
        self.assertIn("week of 2024-03-04", out)
        self.assertIn("1h10m", out)
        data = json.loads(self.ok("timesheet", "--format", "json", "--week-of", "2024-03-11"))
        self.assertEqual(data["total_minutes"], 0)
        md = self.ok("timesheet", "--format", "markdown")
        self.assertTrue(md.startswith("| project |"))

    def test_budget_command(self):
        self.assertIn("no budgets set", self.ok("budget"))
        self.write_config('[tasklog]\nrounding = 0\n[budgets]\nacme = "1h"\n"acme/site" = "2h"\n')
        self.add("acme/site", "2024-03-04 09:00", "2024-03-04 10:30")
        out = self.ok("budget", config=True)
        self.assertIn("over", out)
        self.assertIn("75%", out)

    def test_bad_budgets(self):
        for text in ('[tasklog]\n[budgets]\nacme = 40\n', '[tasklog]\n[budgets]\nacme = "forty"\n',
                     '[tasklog]\n[budgets]\n"two words" = "1h"\n', '[tasklog]\nbudgets = 3\n'):
            self.write_config(text)
            self.fails("budget", config=True, code=2)


if __name__ == "__main__":
    unittest.main()
