"""Acceptance tests of sql-topcustomers: top_customers.sql with the sqlite3 tool."""
import json
import os
import random
import subprocess
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))

TABLES = """
CREATE TABLE customers(id INTEGER PRIMARY KEY, name TEXT NOT NULL, country TEXT NOT NULL);
CREATE TABLE orders(id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL REFERENCES customers(id),
                    amount REAL NOT NULL, status TEXT NOT NULL, ordered_on TEXT NOT NULL);
"""


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


def q(s):
    return "'" + s.replace("'", "''") + "'"


class TopCustomers(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.addCleanup(self.dir.cleanup)
        self.db = os.path.join(self.dir.name, "shop.db")
        _, err = sql(self.db, TABLES)
        self.assertIsNone(err)
        with open(os.path.join(HERE, "top_customers.sql"), encoding="utf-8") as f:
            self.query = f.read()

    def load(self, customers, orders):
        stmts = ["BEGIN;"]
        for cid, name, country in customers:
            stmts.append(f"INSERT INTO customers VALUES ({cid}, {q(name)}, {q(country)});")
        for oid, (cid, amount, status) in enumerate(orders, 1):
            stmts.append(f"INSERT INTO orders VALUES ({oid}, {cid}, {amount}, {q(status)}, '2024-01-01');")
        stmts.append("COMMIT;")
        _, err = sql(self.db, "\n".join(stmts))
        self.assertIsNone(err)

    def run_query(self):
        rows, err = sql(self.db, self.query)
        self.assertIsNone(err, err)
        for r in rows:
            self.assertEqual(list(r), ["country", "name", "total", "rank"], "the columns and their order")
        return [(r["country"], r["name"], round(float(r["total"]), 6), r["rank"]) for r in rows]

    def test_example(self):
        self.load(
            [(1, "Ann", "NO"), (2, "Bo", "NO"), (3, "Cy", "NO"), (4, "Di", "NO"),
             (5, "Ed", "SE"), (6, "Fa", "SE"), (7, "Gu", "DK")],
            [(1, 100, "paid"), (1, 50, "pending"), (2, 300, "paid"), (3, 120, "paid"),
             (4, 500, "cancelled"), (4, 10, "paid"), (5, 70, "refunded"), (6, 70, "paid"),
             (7, 5, "cancelled")])
        self.assertEqual(self.run_query(), [
            ("NO", "Bo", 300.0, 1), ("NO", "Ann", 150.0, 2), ("NO", "Cy", 120.0, 3),
            ("SE", "Ed", 70.0, 1), ("SE", "Fa", 70.0, 2)])

    def test_ties_by_name(self):
        self.load([(1, "Zed", "US"), (2, "Amy", "US"), (3, "Max", "US"), (4, "Bob", "US")],
                  [(1, 10, "paid"), (2, 10, "paid"), (3, 10, "paid"), (4, 10, "paid")])
        self.assertEqual(self.run_query(), [("US", "Amy", 10.0, 1), ("US", "Bob", 10.0, 2),
                                            ("US", "Max", 10.0, 3)])

    def test_empty(self):
        self.assertEqual(self.run_query(), [])

    def test_random_against_python(self):
        rnd = random.Random(11)
        customers = [(i, f"c{rnd.randint(0, 99):02d}x{i}", rnd.choice(["AT", "BE", "CH", "DE"]))
                     for i in range(1, 41)]
        orders = [(rnd.randint(1, 40), rnd.randint(1, 20) * 5.25,
                   rnd.choice(["paid", "pending", "refunded", "cancelled"])) for _ in range(150)]
        self.load(customers, orders)
        totals = {}
        for cid, amount, status in orders:
            if status != "cancelled":
                totals[cid] = totals.get(cid, 0) + amount
        want = []
        for country in sorted({c[2] for c in customers}):
            ranked = sorted(((-totals[cid], name) for cid, name, ctry in customers
                             if ctry == country and cid in totals))
            for rank, (neg, name) in enumerate(ranked[:3], 1):
                want.append((country, name, round(-neg, 6), rank))
        self.assertEqual(self.run_query(), want)


if __name__ == "__main__":
    unittest.main()
