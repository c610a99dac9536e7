import datetime as dt
import io
import json
import unittest

from tasklog import export, render
from tasklog.model import Entry

T = dt.datetime


class Render(unittest.TestCase):
    def test_table_aligns(self):
        out = render.table(["name", "n"], [["a", 1], ["long name", 100]], "lr")
        self.assertEqual(out.splitlines(), [
            "name         n",
            "---------  ---",
            "a            1",
            "long name  100",
        ])

    def test_markdown_escapes(self):
        out = render.markdown(["a", "b"], [["x|y", 2]], "lr")
        self.assertEqual(out.splitlines(), ["| a | b |", "| --- | ---: |", "| x\\|y | 2 |"])


class Export(unittest.TestCase):
    ENTRIES = [
        Entry(1, "acme", T(2024, 3, 4, 9, 0), T(2024, 3, 4, 10, 5), "design, \"v2\"", ["meeting"]),
        Entry(2, "home", T(2024, 3, 5, 18, 0), None, "reading"),
    ]

    def test_json_leaves_out_the_running_entry(self):
        buf = io.StringIO()
        export.export_json(self.ENTRIES, buf)
        data = json.loads(buf.getvalue())
        self.assertEqual(data, [{"id": 1, "start": "2024-03-04 09:00", "end": "2024-03-04 10:05",
                                 "minutes": 65, "project": "acme", "task": "design, \"v2\"",
                                 "tags": ["meeting"]}])

    def test_json_of_nothing(self):
        buf = io.StringIO()
        export.export_json([], buf)
        self.assertEqual(json.loads(buf.getvalue()), [])

    def test_markdown(self):
        buf = io.StringIO()
        export.export_markdown(self.ENTRIES, buf)
        lines = buf.getvalue().splitlines()
        self.assertEqual(len(lines), 3)
        self.assertIn("1h05m", lines[2])

    def test_formats(self):
        self.assertIn("json", export.FORMATS)
        self.assertIn("markdown", export.FORMATS)


if __name__ == "__main__":
    unittest.main()
