"""Acceptance tests of sql-orgchart: the views of orgchart.sql."""
import json
import os
import random
import subprocess
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
TABLE = ("CREATE TABLE employees(id INTEGER PRIMARY KEY, name TEXT NOT NULL, "
         "manager_id INTEGER REFERENCES employees(id));\n")


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


class OrgChart(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.addCleanup(self.dir.cleanup)
        self.db = os.path.join(self.dir.name, "org.db")
        with open(os.path.join(HERE, "orgchart.sql"), encoding="utf-8") as f:
            _, err = sql(self.db, TABLE + f.read())
        self.assertIsNone(err, f"orgchart.sql: {err}")

    def people(self, rows):
        text = "BEGIN;" + "".join(
            f"INSERT INTO employees VALUES ({i}, '{n}', {'NULL' if m is None else m});" for i, n, m in rows
        ) + "COMMIT;"
        _, err = sql(self.db, text)
        self.assertIsNone(err)

    def query(self, text):
        rows, err = sql(self.db, text)
        self.assertIsNone(err, err)
        return [tuple(r.values()) for r in rows]

    SMALL = [(1, "Ada", None), (2, "Bob", 1), (3, "Cy", 2), (4, "Di", 2), (5, "Eve", 1),
             (6, "Fay", None), (7, "Gus", 6), (8, "Hal", 3)]

    def test_chain(self):
        self.people(self.SMALL)
        got = self.query("SELECT employee_id, manager_id, depth FROM chain ORDER BY employee_id, depth;")
        self.assertEqual(got, [(2, 1, 1), (3, 2, 1), (3, 1, 2), (4, 2, 1), (4, 1, 2), (5, 1, 1),
                               (7, 6, 1), (8, 3, 1), (8, 2, 2), (8, 1, 3)])

    def test_team_size(self):
        self.people(self.SMALL)
        got = self.query("SELECT manager_id, reports FROM team_size ORDER BY manager_id;")
        self.assertEqual(got, [(1, 5), (2, 3), (3, 1), (6, 1)])

    def test_org_path(self):
        self.people(self.SMALL)
        got = dict(self.query("SELECT employee_id, path FROM org_path;"))
        self.assertEqual(got, {1: "Ada", 2: "Ada > Bob", 3: "Ada > Bob > Cy", 4: "Ada > Bob > Di",
                               5: "Ada > Eve", 6: "Fay", 7: "Fay > Gus", 8: "Ada > Bob > Cy > Hal"})

    def test_views_follow_the_table(self):
        self.people([(1, "Ada", None)])
        self.assertEqual(self.query("SELECT count(*) FROM chain;"), [(0,)])
        self.people([(2, "Bob", 1)])
        self.assertEqual(self.query("SELECT manager_id, reports FROM team_size;"), [(1, 1)])

    def test_random_tree(self):
        rnd = random.Random(5)
        rows = [(1, "p1", None)]
        for i in range(2, 200):
            rows.append((i, f"p{i}", None if rnd.random() < 0.05 else rnd.randint(1, i - 1)))
        self.people(rows)
        boss = {i: m for i, _, m in rows}
        want_chain = set()
        for i in boss:
            m, d = boss[i], 1
            while m is not None:
                want_chain.add((i, m, d))
                m, d = boss[m], d + 1
        got_chain = set(self.query("SELECT employee_id, manager_id, depth FROM chain;"))
        self.assertEqual(got_chain, want_chain)
        want_size = {}
        for _, m, _ in want_chain:
            want_size[m] = want_size.get(m, 0) + 1
        self.assertEqual(dict(self.query("SELECT manager_id, reports FROM team_size;")), want_size)
        name = {i: n for i, n, _ in rows}
        paths = dict(self.query("SELECT employee_id, path FROM org_path;"))
        for i in boss:
            parts, m = [name[i]], boss[i]
            while m is not None:
                parts.append(name[m])
                m = boss[m]
            self.assertEqual(paths.get(i), " > ".join(reversed(parts)))


if __name__ == "__main__":
    unittest.main()
