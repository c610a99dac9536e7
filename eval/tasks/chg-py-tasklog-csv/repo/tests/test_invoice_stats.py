import datetime as dt
import unittest

from tasklog import invoice, stats
from tasklog.model import Entry
from tests.helpers import CliCase

T = dt.datetime


def entries():
    return [
        Entry(1, "acme", T(2024, 3, 4, 9, 0), T(2024, 3, 4, 10, 20)),
        Entry(2, "acme/site", T(2024, 3, 5, 9, 0), T(2024, 3, 5, 9, 45)),
        Entry(3, "home", T(2024, 3, 5, 20, 0), T(2024, 3, 5, 20, 10)),
        Entry(4, "acme", T(2024, 3, 6, 9, 0), T(2024, 3, 6, 9, 7)),
        Entry(5, "acme", T(2024, 3, 9, 9, 0), T(2024, 3, 9, 12, 0)),
    ]


class Invoice(unittest.TestCase):
    def test_rates_inherit(self):
        rates = {"acme": 9500, "acme/site": 8000}
        self.assertEqual(invoice.rate_for("acme/site", rates), 8000)
        self.assertEqual(invoice.rate_for("acme/api/v2", rates), 9500)
        with self.assertRaises(invoice.InvoiceError):
            invoice.rate_for("home", rates)

    def test_lines(self):
        got = invoice.lines(entries()[:2], {"acme": 9000, "acme/site": 8000})
        self.assertEqual([(l.project, l.minutes, l.amount_cents) for l in got],
                         [("acme", 80, 12000), ("acme/site", 45, 6000)])

    def test_rounding_applies(self):
        got = invoice.lines(entries()[3:4], {"acme": 6000}, rounding=15)
        self.assertEqual(got[0].minutes, 0)
        got = invoice.lines(entries()[3:4], {"acme": 6000}, rounding=5)
        self.assertEqual((got[0].minutes, got[0].amount_cents), (5, 500))

    def test_money(self):
        self.assertEqual(invoice.money(123456789), "1,234,567.89")
        self.assertEqual(invoice.money(5), "0.05")
        self.assertEqual(invoice.money(-250), "-2.50")
        self.assertEqual(invoice.cents(95), 9500)
        self.assertEqual(invoice.cents(80.125), 8013)


class Stats(unittest.TestCase):
    def test_compute(self):
        st = stats.compute(entries(), dt.date(2024, 3, 1), dt.date(2024, 3, 31))
        self.assertEqual(st.days_worked, 4)
        self.assertEqual(st.longest_streak, 3)
        self.assertEqual(st.busiest_day, dt.date(2024, 3, 9))
        self.assertEqual(st.total, 80 + 45 + 10 + 7 + 180)
        self.assertEqual(st.by_weekday[1], 55)

    def test_nothing(self):
        st = stats.compute([], dt.date(2024, 3, 1), dt.date(2024, 3, 31))
        self.assertEqual(stats.describe(st), ["no time recorded in this period"])


class Commands(CliCase):
    def test_invoice(self):
        self.write_config('[tasklog]\nrounding = 0\n[rates]\nacme = 90\n"acme/site" = 80.5\n')
        self.add("acme", "2024-03-04 09:00", "2024-03-04 10:20")
        self.add("acme/site", "2024-03-05 09:00", "2024-03-05 11:00")
        out = self.ok("invoice", "--from", "2024-03-01", "--to", "2024-03-31", "--client", "ACME",
                      config=True)
        self.assertIn("for ACME", out)
        self.assertIn("120.00", out)
        self.assertIn("161.00", out)
        self.assertIn("281.00", out)
        self.fails("invoice", config=True)

    def test_invoice_needs_rates(self):
        self.write_config('[tasklog]\nrounding = 0\n')
        self.add("home", "2024-03-04 09:00", "2024-03-04 10:00")
        err = self.fails("invoice", "--month", config=True)
        self.assertIn("no rate for project 'home'", err)

    def test_bad_rates(self):
        for text in ('[tasklog]\n[rates]\nacme = "ninety"\n', '[tasklog]\n[rates]\nacme = -5\n'):
            self.write_config(text)
            self.fails("invoice", "--month", config=True, code=2)

    def test_stats(self):
        self.add("acme", "2024-03-04 09:00", "2024-03-04 10:00")
        self.add("acme", "2024-03-05 09:00", "2024-03-05 09:30")
        out = self.ok("stats")
        self.assertIn("days worked:     2", out)
        self.assertIn("longest streak:  2 days", out)
        self.assertIn("Monday", out)


if __name__ == "__main__":
    unittest.main()
