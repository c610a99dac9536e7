"""Acceptance tests of sql-ledger: ledger.sh and the views, with sh and sqlite3."""
import json
import os
import subprocess
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))


def sql(db, text):
    """Runs TEXT with the sqlite3 tool on DB; returns (rows as dicts, error or None)."""
    p = subprocess.run(["sqlite3", "-bail", "-json", db], input=text,
                       capture_output=True, text=True, timeout=30)
    rows, dec, s, i = [], json.JSONDecoder(), p.stdout, 0
    while True:
        while i < len(s) and s[i].isspace():
            i += 1
        if i >= len(s):
            break
        obj, i = dec.raw_decode(s, i)
        rows.extend(obj)
    return rows, (p.stderr.strip() or "error") if p.returncode else None


class Ledger(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.addCleanup(self.dir.cleanup)
        folder = os.path.join(self.dir.name, "my money")
        os.mkdir(folder)
        self.db = os.path.join(folder, "ledger.db")
        self.ok("init")

    def run_cli(self, *args):
        return subprocess.run(["sh", os.path.join(HERE, "ledger.sh"), self.db, *args],
                              capture_output=True, text=True, timeout=30, cwd=self.dir.name)

    def ok(self, *args):
        p = self.run_cli(*args)
        self.assertEqual(p.returncode, 0, f"{args}: {p.stderr}")
        return p.stdout

    def rows(self, text):
        rows, err = sql(self.db, text)
        self.assertIsNone(err, err)
        return [tuple(r.values()) for r in rows]

    def add(self, *args):
        return int(self.ok("add", *args).strip())

    def lines(self, out):
        return [tuple(l.split("\t")) for l in out.splitlines() if l.strip()]

    def test_init_twice(self):
        self.add("2024-01-02", "cash", "10")
        self.ok("init")
        self.assertEqual(self.rows("SELECT count(*) FROM transactions;"), [(1,)])

    def test_add_stores_cents(self):
        self.assertEqual(self.add("2024-01-05", "income:salary", "1000"), 1)
        self.assertEqual(self.add("2024-01-06", "expenses:food", "-12.5", "lunch"), 2)
        self.assertEqual(self.add("2024-01-07", "expenses:food", "-0.99"), 3)
        self.add("2024-01-07", "misc", "-0")
        got = self.rows("SELECT id, day, account, cents, memo FROM transactions ORDER BY id;")
        self.assertEqual(got, [(1, "2024-01-05", "income:salary", 100000, ""),
                               (2, "2024-01-06", "expenses:food", -1250, "lunch"),
                               (3, "2024-01-07", "expenses:food", -99, ""),
                               (4, "2024-01-07", "misc", 0, "")])

    def test_memo_is_stored_exactly(self):
        memo = "Bob's \"lunch\"; DROP TABLE transactions; -- $HOME `id` \\n %s ü"
        i = self.add("2024-02-01", "expenses:food", "-7.25", memo)
        self.assertEqual(self.rows(f"SELECT memo FROM transactions WHERE id = {i};"), [(memo,)])
        listed = self.lines(self.ok("list"))
        self.assertEqual(listed, [(str(i), "2024-02-01", "expenses:food", "-7.25", memo)])

    def test_invalid_input_stores_nothing(self):
        self.add("2024-01-05", "cash", "1")
        bad = [
            ["add", "2024-02-30", "cash", "1"], ["add", "2024-13-01", "cash", "1"],
            ["add", "24-01-01", "cash", "1"], ["add", "2024-1-5", "cash", "1"],
            ["add", "2024-01-05", "bad account", "1"], ["add", "2024-01-05", "", "1"],
            ["add", "2024-01-05", "x;y", "1"], ["add", "2024-01-05", "cash", "1.234"],
            ["add", "2024-01-05", "cash", "abc"], ["add", "2024-01-05", "cash", "1,5"],
            ["add", "2024-01-05", "cash"], ["add"], ["delete", "99"], ["delete", "x"],
            ["month", "2024-1"], ["frobnicate"],
        ]
        for args in bad:
            p = self.run_cli(*args)
            self.assertNotEqual(p.returncode, 0, args)
            self.assertTrue(p.stderr.strip(), f"{args}: a message on stderr")
        self.assertEqual(self.rows("SELECT count(*) FROM transactions;"), [(1,)])
        self.assertTrue(self.rows("SELECT 1 FROM transactions;"))

    def fill(self):
        self.add("2024-01-05", "income", "1000")
        self.add("2024-01-20", "food", "-42.5")
        self.add("2024-02-02", "food", "-0.10")
        self.add("2024-02-03", "food", "-0.20")
        self.add("2024-02-10", "income", "1000")
        self.add("2024-02-11", "bank:fees", "-3")

    def test_views(self):
        self.fill()
        self.assertEqual(self.rows("SELECT account, cents FROM balances ORDER BY account;"),
                         [("bank:fees", -300), ("food", -4280), ("income", 200000)])
        self.assertEqual(self.rows("SELECT month, account, cents FROM monthly ORDER BY month, account;"),
                         [("2024-01", "food", -4250), ("2024-01", "income", 100000),
                          ("2024-02", "bank:fees", -300), ("2024-02", "food", -30),
                          ("2024-02", "income", 100000)])

    def test_balance_and_month(self):
        self.fill()
        self.assertEqual(self.lines(self.ok("balance")),
                         [("bank:fees", "-3.00"), ("food", "-42.80"), ("income", "2000.00")])
        self.assertEqual(self.lines(self.ok("month", "2024-02")),
                         [("bank:fees", "-3.00"), ("food", "-0.30"), ("income", "1000.00")])
        self.assertEqual(self.lines(self.ok("month", "2023-12")), [])

    def test_list_order_and_delete(self):
        self.add("2024-03-02", "b", "2")
        self.add("2024-03-01", "a", "1")
        self.add("2024-03-02", "c", "-0.05", "x y")
        self.assertEqual(self.lines(self.ok("list")), [
            ("2", "2024-03-01", "a", "1.00", ""), ("1", "2024-03-02", "b", "2.00", ""),
            ("3", "2024-03-02", "c", "-0.05", "x y")])
        self.ok("delete", "1")
        self.assertEqual([l[0] for l in self.lines(self.ok("list"))], ["2", "3"])
        self.assertEqual(self.lines(self.ok("balance")), [("a", "1.00"), ("c", "-0.05")])


if __name__ == "__main__":
    unittest.main()
