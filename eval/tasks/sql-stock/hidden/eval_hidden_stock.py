"""Acceptance tests of sql-stock: the triggers and views of schema.sql."""
import json
import os
import random
import subprocess
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))


def sql(db, text):
    """Runs TEXT with the sqlite3 tool on DB (foreign keys on); returns
    (rows as dicts, error or None)."""
    p = subprocess.run(["sqlite3", "-bail", "-json", db], input="PRAGMA foreign_keys = ON;\n" + text,
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


class Stock(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.addCleanup(self.dir.cleanup)
        self.db = os.path.join(self.dir.name, "stock.db")
        with open(os.path.join(HERE, "schema.sql"), encoding="utf-8") as f:
            _, err = sql(self.db, f.read())
        self.assertIsNone(err, f"schema.sql: {err}")
        self.ok("""INSERT INTO products(id, sku, name) VALUES (1, 'BOLT-6', 'bolt M6'), (2, 'NUT-6', 'nut M6');
                   INSERT INTO products(id, sku, name, reorder_level) VALUES (3, 'GLUE', 'glue', 2);""")

    def ok(self, text):
        rows, err = sql(self.db, text)
        self.assertIsNone(err, f"{text.strip()}: {err}")
        return rows

    def refused(self, text, words):
        before = self.snapshot()
        _, err = sql(self.db, text)
        self.assertIsNotNone(err, f"should be refused: {text.strip()}")
        if words:
            self.assertIn(words, err.lower(), err)
        self.assertEqual(self.snapshot(), before, "a refused change changed nothing")

    def snapshot(self):
        rows, _ = sql(self.db, "SELECT id, stock FROM products ORDER BY id; SELECT count(*) AS n FROM movements;")
        return rows

    def stock(self, pid):
        return self.ok(f"SELECT stock FROM products WHERE id = {pid};")[0]["stock"]

    def move(self, pid, kind, qty):
        self.ok(f"INSERT INTO movements(product_id, kind, qty) VALUES ({pid}, '{kind}', {qty});")

    def test_defaults(self):
        rows = self.ok("SELECT stock, reorder_level FROM products WHERE id = 1;")
        self.assertEqual(rows, [{"stock": 0, "reorder_level": 5}])
        self.move(1, "in", 1)
        at = self.ok("SELECT at FROM movements;")[0]["at"]
        self.assertRegex(at, r"^\d{4}-\d\d-\d\d")

    def test_in_and_out(self):
        self.move(1, "in", 10)
        self.move(1, "out", 3)
        self.move(1, "in", 5)
        self.assertEqual(self.stock(1), 12)
        self.assertEqual(self.stock(2), 0)
        self.move(1, "out", 12)
        self.assertEqual(self.stock(1), 0)

    def test_insufficient_stock(self):
        self.move(2, "in", 4)
        self.refused("INSERT INTO movements(product_id, kind, qty) VALUES (2, 'out', 5);", "insufficient stock")
        self.refused("INSERT INTO movements(product_id, kind, qty) VALUES (1, 'out', 1);", "insufficient stock")
        self.assertEqual(self.stock(2), 4)

    def test_bad_movements(self):
        self.refused("INSERT INTO movements(product_id, kind, qty) VALUES (1, 'in', 0);", None)
        self.refused("INSERT INTO movements(product_id, kind, qty) VALUES (1, 'in', -3);", None)
        self.refused("INSERT INTO movements(product_id, kind, qty) VALUES (1, 'sideways', 3);", None)
        self.refused("INSERT INTO movements(product_id, kind, qty) VALUES (99, 'in', 3);", None)
        self.refused("INSERT INTO products(sku, name) VALUES ('BOLT-6', 'again');", None)

    def test_delete_undoes(self):
        self.move(1, "in", 10)
        self.move(1, "out", 4)
        self.ok("DELETE FROM movements WHERE kind = 'out';")
        self.assertEqual(self.stock(1), 10)
        self.move(1, "out", 8)
        self.refused("DELETE FROM movements WHERE kind = 'in';", "insufficient stock")
        self.assertEqual(self.stock(1), 2)

    def test_append_only(self):
        self.move(1, "in", 10)
        self.refused("UPDATE movements SET qty = 1;", "append-only")
        self.refused("UPDATE movements SET kind = 'out';", "append-only")

    def test_low_stock(self):
        self.move(1, "in", 5)
        self.move(2, "in", 4)
        self.move(3, "in", 1)
        rows = self.ok("SELECT sku, name, stock, reorder_level FROM low_stock ORDER BY sku;")
        self.assertEqual([tuple(r.values()) for r in rows], [("GLUE", "glue", 1, 2), ("NUT-6", "nut M6", 4, 5)])

    def test_product_activity(self):
        self.move(1, "in", 10)
        self.move(1, "out", 3)
        self.move(1, "out", 2)
        self.move(3, "in", 7)
        rows = self.ok("SELECT sku, received, shipped, movements FROM product_activity ORDER BY sku;")
        self.assertEqual([tuple(r.values()) for r in rows],
                         [("BOLT-6", 10, 5, 3), ("GLUE", 7, 0, 1), ("NUT-6", 0, 0, 0)])

    def test_random_walk(self):
        rnd = random.Random(3)
        want = {1: 0, 2: 0, 3: 0}
        for _ in range(60):
            pid = rnd.randint(1, 3)
            qty = rnd.randint(1, 9)
            kind = rnd.choice(["in", "in", "out"])
            _, err = sql(self.db, f"INSERT INTO movements(product_id, kind, qty) VALUES ({pid}, '{kind}', {qty});")
            if kind == "out" and qty > want[pid]:
                self.assertIsNotNone(err)
            else:
                self.assertIsNone(err, err)
                want[pid] += qty if kind == "in" else -qty
        for pid, n in want.items():
            self.assertEqual(self.stock(pid), n)


if __name__ == "__main__":
    unittest.main()
