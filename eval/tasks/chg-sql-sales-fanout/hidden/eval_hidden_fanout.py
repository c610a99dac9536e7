"""Acceptance tests of chg-sql-sales-fanout: the views with products that
have several suppliers."""
import json
import os
import subprocess
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))

FIXTURE = """
INSERT INTO products VALUES (1, 'MUG', 'mug', 800), (2, 'TEE', 't-shirt', 2000),
  (3, 'CAP', 'cap', 1500), (4, 'PEN', 'pen', 100);
INSERT INTO suppliers VALUES (1, 'Acme'), (2, 'Bolt & Co'), (3, 'Zeta'), (4, 'Idle Ltd');
INSERT INTO product_suppliers VALUES
  (1, 1, 1),                       -- mug: one supplier
  (2, 3, 0), (2, 2, 1), (2, 1, 0), -- t-shirt: three, Bolt & Co primary
  (3, 3, 0), (3, 1, 0);            -- cap: two, none primary
INSERT INTO orders VALUES
  (1, '2024-01-05 10:00:00', 'shipped'), (2, '2024-01-20 16:30:00', 'paid'),
  (3, '2024-02-02 09:15:00', 'cancelled'), (4, '2024-02-14 12:00:00', 'open');
INSERT INTO order_items VALUES
  (1, 1, 2, 800), (1, 2, 1, 1900), (1, 3, 4, 1500),
  (2, 1, 1, 800), (2, 2, 2, 2000),
  (3, 2, 5, 2000), (3, 3, 1, 1500),
  (4, 2, 2, 2000), (4, 3, 1, 1400);
"""


def sql(db, text):
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


class Fanout(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)
        self.db = os.path.join(self.tmp.name, "shop.db")
        text = ""
        for name in ("schema.sql", "views.sql"):
            with open(os.path.join(HERE, name), encoding="utf-8") as f:
                text += f.read() + "\n"
        _, err = sql(self.db, text + FIXTURE)
        self.assertIsNone(err, err)

    def query(self, text):
        rows, err = sql(self.db, text)
        self.assertIsNone(err, err)
        return [tuple(r.values()) for r in rows]

    def test_product_sales(self):
        got = self.query("SELECT product_id, sku, name, suppliers, primary_supplier, units, revenue_cents "
                         "FROM product_sales ORDER BY product_id;")
        self.assertEqual(got, [
            (1, "MUG", "mug", "Acme", "Acme", 3, 2400),
            (2, "TEE", "t-shirt", "Acme, Bolt & Co, Zeta", "Bolt & Co", 5, 9900),
            (3, "CAP", "cap", "Acme, Zeta", None, 5, 7400),
            (4, "PEN", "pen", None, None, 0, 0),
        ])

    def test_columns_unchanged(self):
        rows, err = sql(self.db, "SELECT * FROM product_sales WHERE product_id = 1;")
        self.assertIsNone(err)
        self.assertEqual(list(rows[0]), ["product_id", "sku", "name", "suppliers", "primary_supplier",
                                         "units", "revenue_cents"])

    def test_totals_agree(self):
        total = self.query("SELECT sum(units), sum(revenue_cents) FROM product_sales;")
        sold = self.query("SELECT sum(qty), sum(qty * unit_cents) FROM sold_items;")
        self.assertEqual(total, sold)

    def test_other_views(self):
        self.assertEqual(self.query("SELECT supplier, products, units FROM supplier_report ORDER BY supplier;"),
                         [("Acme", 3, 13), ("Bolt & Co", 1, 5), ("Idle Ltd", 0, 0), ("Zeta", 2, 10)])
        self.assertEqual(self.query("SELECT month, revenue_cents, orders FROM monthly_revenue ORDER BY month;"),
                         [("2024-01", 14300, 2), ("2024-02", 5400, 1)])


if __name__ == "__main__":
    unittest.main()
