"""Acceptance tests of py-csvstats: summarize() and python3 -m csvstats."""
import json
import os
import subprocess
import sys
import tempfile
import unittest

import csvstats

HERE = os.path.dirname(os.path.abspath(__file__))

DATA = """name,age,score,city
ann,34,8.5,Oslo
bob,,7,Bergen
"cy, jr",29,9.25,Oslo
dee,41,,Tromsø
eve, 30 ,6,
"""


class Base(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.addCleanup(self.dir.cleanup)

    def write(self, text, name="data.csv"):
        path = os.path.join(self.dir.name, name)
        with open(path, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        return path


class Summarize(Base):
    def test_numeric_columns_only(self):
        s = csvstats.summarize(self.write(DATA))
        self.assertEqual(set(s), {"age", "score"})

    def test_values(self):
        s = csvstats.summarize(self.write(DATA))
        age = s["age"]
        self.assertEqual(age["count"], 4)
        self.assertEqual(age["missing"], 1)
        self.assertAlmostEqual(age["min"], 29)
        self.assertAlmostEqual(age["max"], 41)
        self.assertAlmostEqual(age["mean"], 33.5)
        self.assertAlmostEqual(age["median"], 32)
        score = s["score"]
        self.assertEqual((score["count"], score["missing"]), (4, 1))
        self.assertAlmostEqual(score["mean"], (8.5 + 7 + 9.25 + 6) / 4)
        self.assertAlmostEqual(score["median"], 7.75)
        self.assertAlmostEqual(score["min"], 6)
        self.assertAlmostEqual(score["max"], 9.25)

    def test_selected_columns(self):
        s = csvstats.summarize(self.write(DATA), columns=["score"])
        self.assertEqual(list(s), ["score"])

    def test_unknown_column(self):
        with self.assertRaises(KeyError):
            csvstats.summarize(self.write(DATA), columns=["height"])

    def test_non_numeric_column_named(self):
        with self.assertRaises(ValueError):
            csvstats.summarize(self.write(DATA), columns=["city"])

    def test_column_without_values(self):
        s = csvstats.summarize(self.write("a,b\n1,\n2,\n"))
        self.assertEqual(s["b"]["count"], 0)
        self.assertEqual(s["b"]["missing"], 2)
        for k in ("min", "max", "mean", "median"):
            self.assertIsNone(s["b"][k])
        self.assertAlmostEqual(s["a"]["median"], 1.5)

    def test_negative_and_exponent(self):
        s = csvstats.summarize(self.write("x\n-1.5\n2e2\n3\n"))
        self.assertAlmostEqual(s["x"]["min"], -1.5)
        self.assertAlmostEqual(s["x"]["max"], 200)
        self.assertAlmostEqual(s["x"]["median"], 3)


class CommandLine(Base):
    def run_cli(self, *args):
        return subprocess.run([sys.executable, "-m", "csvstats", *args], cwd=HERE,
                              capture_output=True, text=True, timeout=30)

    def test_json_matches_summarize(self):
        path = self.write(DATA)
        p = self.run_cli(path, "--json")
        self.assertEqual(p.returncode, 0, p.stderr)
        got = json.loads(p.stdout)
        want = csvstats.summarize(path)
        self.assertEqual(set(got), set(want))
        for col in want:
            for k, v in want[col].items():
                if v is None:
                    self.assertIsNone(got[col][k])
                else:
                    self.assertAlmostEqual(got[col][k], v)

    def test_column_option(self):
        p = self.run_cli(self.write(DATA), "--column", "age", "--json")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(list(json.loads(p.stdout)), ["age"])

    def test_plain_output_mentions_columns(self):
        p = self.run_cli(self.write(DATA))
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("age", p.stdout)
        self.assertIn("score", p.stdout)

    def test_errors_exit_2(self):
        p = self.run_cli(os.path.join(self.dir.name, "nope.csv"))
        self.assertEqual(p.returncode, 2)
        self.assertTrue(p.stderr.strip())
        p = self.run_cli(self.write(DATA), "--column", "height")
        self.assertEqual(p.returncode, 2)
        self.assertTrue(p.stderr.strip())


if __name__ == "__main__":
    unittest.main()
