"""Acceptance tests of py-todo, through its command line only."""
import json
import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))


class Todo(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.addCleanup(self.dir.cleanup)
        self.db = os.path.join(self.dir.name, "list.json")

    def cli(self, *args, db=True, env=None):
        argv = [sys.executable, "-m", "todo"]
        if db:
            argv += ["--db", self.db]
        e = dict(os.environ)
        e.pop("TODO_DB", None)
        e["HOME"] = self.dir.name
        e.update(env or {})
        return subprocess.run(argv + list(args), cwd=HERE, capture_output=True, text=True,
                              timeout=30, env=e)

    def ok(self, *args, **kw):
        p = self.cli(*args, **kw)
        self.assertEqual(p.returncode, 0, f"{args}: {p.stderr}")
        return p.stdout

    def add(self, *args, **kw):
        return int(self.ok("add", *args, **kw).strip())

    def items(self, *args, **kw):
        return json.loads(self.ok("list", "--json", *args, **kw))

    def test_add_prints_increasing_ids(self):
        self.assertEqual(self.add("buy milk"), 1)
        self.assertEqual(self.add("call mum"), 2)
        got = self.items()
        self.assertEqual([i["id"] for i in got], [1, 2])
        self.assertEqual(got[0]["text"], "buy milk")
        self.assertIs(got[0]["done"], False)
        self.assertIsNone(got[0]["due"])
        self.assertEqual(got[0]["tags"], [])

    def line_of(self, out, text):
        """The one line of OUT that holds TEXT."""
        found = [l for l in out.splitlines() if text in l]
        self.assertEqual(len(found), 1, f"one line with {text!r} in:\n{out}")
        return found[0]

    def first_token(self, line):
        return line.split()[0].strip("#.:[]()")

    def test_plain_list_lines_start_with_id(self):
        self.add("first thing")
        self.add("second thing")
        out = self.ok("list")
        self.assertEqual(self.first_token(self.line_of(out, "first thing")), "1")
        self.assertEqual(self.first_token(self.line_of(out, "second thing")), "2")
        self.assertLess(out.index("first thing"), out.index("second thing"))

    def test_due_and_tags(self):
        self.add("pay rent", "--due", "2024-03-01", "--tag", "home", "--tag", "money")
        self.add("write report", "--tag", "work")
        got = self.items()
        self.assertEqual(got[0]["due"], "2024-03-01")
        self.assertEqual(sorted(got[0]["tags"]), ["home", "money"])
        self.assertEqual([i["text"] for i in self.items("--tag", "work")], ["write report"])

    def test_done_hides_unless_all(self):
        self.add("a")
        self.add("b")
        self.ok("done", "1")
        self.assertEqual([i["id"] for i in self.items()], [2])
        every = self.items("--all")
        self.assertEqual([(i["id"], i["done"]) for i in every], [(1, True), (2, False)])
        plain = self.ok("list", "--all")
        self.assertIn("a", plain)

    def test_ids_never_reused(self):
        self.add("a")
        self.add("b")
        self.ok("rm", "2")
        self.assertEqual(self.add("c"), 3)
        self.ok("rm", "1")
        self.ok("rm", "3")
        self.assertEqual(self.add("d"), 4)
        self.assertEqual([i["id"] for i in self.items("--all")], [4])

    def test_overdue(self):
        self.add("late", "--due", "2024-01-10")
        self.add("today", "--due", "2024-01-15")
        self.add("later", "--due", "2024-02-01")
        self.add("no date")
        self.add("late but done", "--due", "2023-12-01")
        self.ok("done", "5")
        got = json.loads(self.ok("overdue", "--today", "2024-01-15", "--json"))
        self.assertEqual([i["text"] for i in got], ["late"])
        plain = self.ok("overdue", "--today", "2024-01-15")
        self.assertIn("late", plain)
        self.assertNotIn("later", plain)

    def test_env_and_home_defaults(self):
        other = os.path.join(self.dir.name, "other.json")
        self.add("from env", db=False, env={"TODO_DB": other})
        self.assertTrue(os.path.exists(other))
        with open(other, encoding="utf-8") as f:
            json.load(f)
        self.assertFalse(os.path.exists(self.db))
        self.add("from home", db=False)
        self.assertTrue(os.path.exists(os.path.join(self.dir.name, ".todo.json")))

    def test_unicode_and_quotes(self):
        text = 'Ring "Åsa" about the café\'s bill'
        self.add(text)
        self.assertEqual(self.items()[0]["text"], text)

    def read_db(self):
        with open(self.db, "rb") as f:
            return f.read()

    def test_errors_leave_the_file_alone(self):
        self.add("keep me", "--due", "2024-05-05")
        before = self.read_db()
        for args in (["done", "9"], ["rm", "9"], ["add", "x", "--due", "2024-02-30"],
                     ["add", "y", "--due", "tomorrow"]):
            p = self.cli(*args)
            self.assertNotEqual(p.returncode, 0, args)
            self.assertTrue(p.stderr.strip(), args)
            self.assertEqual(self.read_db(), before, args)

    def test_corrupt_file_is_not_overwritten(self):
        with open(self.db, "w", encoding="utf-8") as f:
            f.write("{ this is not json")
        p = self.cli("add", "new item")
        self.assertNotEqual(p.returncode, 0)
        self.assertTrue(p.stderr.strip())
        with open(self.db, encoding="utf-8") as f:
            self.assertEqual(f.read(), "{ this is not json")


if __name__ == "__main__":
    unittest.main()
