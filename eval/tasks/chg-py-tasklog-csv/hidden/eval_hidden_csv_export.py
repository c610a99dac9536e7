"""Acceptance tests of chg-py-tasklog-csv: tasklog export --format csv,
through the command line only."""
import csv
import io
import json
import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
HEADER = ["id", "start", "end", "minutes", "project", "task", "tags"]


class CsvExport(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)
        self.data = os.path.join(self.tmp.name, "log.json")

    def cli(self, *args, now="2024-03-08 18:00"):
        env = dict(os.environ, HOME=self.tmp.name, TASKLOG_NOW=now)
        for k in ("TASKLOG_CONFIG", "TASKLOG_DATA"):
            env.pop(k, None)
        p = subprocess.run([sys.executable, "-m", "tasklog", "--data", self.data, *args], cwd=HERE,
                           env=env, capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, f"tasklog {' '.join(args)}: {p.stderr}")
        return p.stdout

    def fill(self):
        self.cli("add", "acme", "2024-03-04 09:00", "design, \"v2\" review", "--end", "2024-03-04 10:05",
                 "--tag", "meeting", "--tag", "dev")
        self.cli("add", "home", "2024-03-05 18:00", "Steuererklärung", "--for", "45m")
        self.cli("add", "acme/site", "2024-03-01 08:00", "--end", "2024-03-01 08:30")
        self.cli("start", "home", "reading", now="2024-03-08 17:00")

    def rows(self, text):
        return list(csv.reader(io.StringIO(text, newline="")))

    def test_header_and_rows(self):
        self.fill()
        rows = self.rows(self.cli("export", "--format", "csv"))
        self.assertEqual(rows[0], HEADER)
        self.assertEqual(rows[1:], [
            ["3", "2024-03-01 08:00", "2024-03-01 08:30", "30", "acme/site", "", ""],
            ["1", "2024-03-04 09:00", "2024-03-04 10:05", "65", "acme", "design, \"v2\" review", "dev;meeting"],
            ["2", "2024-03-05 18:00", "2024-03-05 18:45", "45", "home", "Steuererklärung", ""],
        ])

    def test_same_entries_as_json(self):
        self.fill()
        records = json.loads(self.cli("export"))
        rows = list(csv.DictReader(io.StringIO(self.cli("export", "--format", "csv"), newline="")))
        self.assertEqual([int(r["id"]) for r in rows], [r["id"] for r in records])
        for r, j in zip(rows, records):
            self.assertEqual(int(r["minutes"]), j["minutes"])
            self.assertEqual(r["task"], j["task"])
            self.assertEqual(r["tags"].split(";") if r["tags"] else [], j["tags"])

    def test_filters(self):
        self.fill()
        rows = self.rows(self.cli("export", "--format", "csv", "--project", "acme"))
        self.assertEqual([r[0] for r in rows[1:]], ["3", "1"])
        rows = self.rows(self.cli("export", "--format", "csv", "--from", "2024-03-05"))
        self.assertEqual([r[0] for r in rows[1:]], ["2"])
        rows = self.rows(self.cli("export", "--format", "csv", "--tag", "meeting"))
        self.assertEqual([r[0] for r in rows[1:]], ["1"])

    def test_output_file(self):
        self.fill()
        target = os.path.join(self.tmp.name, "out.csv")
        self.cli("export", "--format", "csv", "-o", target)
        with open(target, encoding="utf-8", newline="") as f:
            rows = list(csv.reader(f))
        self.assertEqual(rows[0], HEADER)
        self.assertEqual(len(rows), 4)
        self.assertEqual(rows[1:], self.rows(self.cli("export", "--format", "csv"))[1:])

    def test_nothing_to_export(self):
        rows = self.rows(self.cli("export", "--format", "csv"))
        self.assertEqual(rows, [HEADER])

    def test_json_unchanged(self):
        self.fill()
        records = json.loads(self.cli("export", "--format", "json"))
        self.assertEqual(records[1], {"id": 1, "start": "2024-03-04 09:00", "end": "2024-03-04 10:05",
                                      "minutes": 65, "project": "acme", "task": "design, \"v2\" review",
                                      "tags": ["dev", "meeting"]})


if __name__ == "__main__":
    unittest.main()
