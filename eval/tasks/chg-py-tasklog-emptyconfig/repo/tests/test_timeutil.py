import datetime as dt
import os
import unittest
from unittest import mock

from tasklog import timeutil as tu


class ParseTime(unittest.TestCase):
    def test_full(self):
        self.assertEqual(tu.parse_time("2024-03-01 09:05"), dt.datetime(2024, 3, 1, 9, 5))
        self.assertEqual(tu.parse_time("2024-03-01T9:05"), dt.datetime(2024, 3, 1, 9, 5))

    def test_clock_is_today(self):
        day = dt.date(2024, 5, 6)
        self.assertEqual(tu.parse_time("13:30", today=day), dt.datetime(2024, 5, 6, 13, 30))

    def test_relative(self):
        with mock.patch.dict(os.environ, {"TASKLOG_NOW": "2024-03-01 10:00"}):
            self.assertEqual(tu.parse_time("-30m"), dt.datetime(2024, 3, 1, 9, 30))
            self.assertEqual(tu.parse_time("-2h"), dt.datetime(2024, 3, 1, 8, 0))

    def test_invalid(self):
        for bad in ("", "9", "25:00", "12:60", "2024-02-30 10:00", "tomorrow", "10:00 am", "-5x"):
            with self.assertRaises(tu.TimeError, msg=bad):
                tu.parse_time(bad, today=dt.date(2024, 1, 1))


class ParseDate(unittest.TestCase):
    def test_words_and_dates(self):
        base = dt.date(2024, 3, 1)
        self.assertEqual(tu.parse_date("today", base), base)
        self.assertEqual(tu.parse_date("Yesterday", base), dt.date(2024, 2, 29))
        self.assertEqual(tu.parse_date("2023-12-31", base), dt.date(2023, 12, 31))
        with self.assertRaises(tu.TimeError):
            tu.parse_date("31.12.2023", base)


class Durations(unittest.TestCase):
    def test_format(self):
        self.assertEqual(tu.format_duration(0), "0m")
        self.assertEqual(tu.format_duration(45), "45m")
        self.assertEqual(tu.format_duration(60), "1h00m")
        self.assertEqual(tu.format_duration(125), "2h05m")
        self.assertEqual(tu.format_duration(-5), "-5m")

    def test_parse(self):
        self.assertEqual(tu.parse_duration("1h30m"), 90)
        self.assertEqual(tu.parse_duration("2h"), 120)
        self.assertEqual(tu.parse_duration("15m"), 15)
        for bad in ("", "h", "1.5h", "30", "1m2h"):
            with self.assertRaises(tu.TimeError, msg=bad):
                tu.parse_duration(bad)

    def test_round(self):
        self.assertEqual(tu.round_minutes(7, 0), 7)
        self.assertEqual(tu.round_minutes(7, 5), 5)
        self.assertEqual(tu.round_minutes(8, 5), 10)
        self.assertEqual(tu.round_minutes(52, 15), 45)
        self.assertEqual(tu.round_minutes(53, 15), 60)

    def test_minutes_between(self):
        a = dt.datetime(2024, 1, 1, 23, 50)
        self.assertEqual(tu.minutes_between(a, dt.datetime(2024, 1, 2, 0, 20)), 30)


class Weeks(unittest.TestCase):
    def test_week_start(self):
        wed = dt.date(2024, 3, 6)
        self.assertEqual(tu.week_start(wed, 0), dt.date(2024, 3, 4))
        self.assertEqual(tu.week_start(wed, 6), dt.date(2024, 3, 3))
        self.assertEqual(tu.week_start(dt.date(2024, 3, 4), 0), dt.date(2024, 3, 4))

    def test_days(self):
        got = list(tu.days(dt.date(2024, 2, 28), dt.date(2024, 3, 1)))
        self.assertEqual(len(got), 3)


class Now(unittest.TestCase):
    def test_fixed_clock(self):
        with mock.patch.dict(os.environ, {"TASKLOG_NOW": "2024-03-01 10:15"}):
            self.assertEqual(tu.now(), dt.datetime(2024, 3, 1, 10, 15))
        with mock.patch.dict(os.environ, {"TASKLOG_NOW": "soon"}):
            with self.assertRaises(tu.TimeError):
                tu.now()


if __name__ == "__main__":
    unittest.main()
