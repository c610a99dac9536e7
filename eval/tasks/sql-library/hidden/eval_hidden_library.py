"""Acceptance tests of sql-library: schema.sql run with the sqlite3 tool."""
import json
import os
import subprocess
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))


def sql(db, text):
    """Runs TEXT with the sqlite3 command-line tool on DB (foreign keys on);
    returns (rows as dicts, error text or None)."""
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


class Library(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.addCleanup(self.dir.cleanup)
        self.db = os.path.join(self.dir.name, "lib.db")
        with open(os.path.join(HERE, "schema.sql"), encoding="utf-8") as f:
            _, err = sql(self.db, f.read())
        self.assertIsNone(err, f"schema.sql: {err}")
        self.ok("""
            INSERT INTO authors(id, name) VALUES (1, 'Ursula K. Le Guin'), (2, 'Italo Calvino');
            INSERT INTO books(id, title, author_id, year, isbn, copies) VALUES
              (1, 'A Wizard of Earthsea', 1, 1968, '9780547773742', 2),
              (2, 'The Dispossessed', 1, 1974, NULL, 1),
              (3, 'Invisible Cities', 2, 1972, NULL, 3);
            INSERT INTO members(id, name, email) VALUES (1, 'Ann', 'ann@example.org'), (2, 'Bo', 'bo@example.org');
        """)

    def ok(self, text):
        rows, err = sql(self.db, text)
        self.assertIsNone(err, f"{text.strip()}: {err}")
        return rows

    def refused(self, text):
        _, err = sql(self.db, text)
        self.assertIsNotNone(err, f"should be refused: {text.strip()}")

    def test_authors(self):
        self.refused("INSERT INTO authors(name) VALUES ('Italo Calvino');")
        self.refused("INSERT INTO authors(name) VALUES (NULL);")

    def test_books(self):
        self.ok("INSERT INTO books(title, author_id) VALUES ('Untitled', 2);")
        rows = self.ok("SELECT copies, year, isbn FROM books WHERE title = 'Untitled';")
        self.assertEqual(rows, [{"copies": 1, "year": None, "isbn": None}])
        self.ok("INSERT INTO books(title, author_id, isbn) VALUES ('B', 2, NULL);")
        self.refused("INSERT INTO books(title, author_id) VALUES (NULL, 1);")
        self.refused("INSERT INTO books(title, author_id) VALUES ('No author', 99);")
        self.refused("INSERT INTO books(title, author_id) VALUES ('No author', NULL);")
        self.refused("INSERT INTO books(title, author_id, year) VALUES ('Too old', 1, 1200);")
        self.refused("INSERT INTO books(title, author_id, year) VALUES ('Too new', 1, 2500);")
        self.ok("INSERT INTO books(title, author_id, year) VALUES ('Gutenberg', 1, 1450);")
        self.refused("INSERT INTO books(title, author_id, isbn) VALUES ('Dup', 2, '9780547773742');")
        self.refused("INSERT INTO books(title, author_id, copies) VALUES ('Neg', 2, -1);")
        self.ok("INSERT INTO books(title, author_id, copies) VALUES ('Zero', 2, 0);")

    def test_members_email_unique_any_case(self):
        self.refused("INSERT INTO members(name, email) VALUES ('Ann 2', 'ANN@example.org');")
        self.refused("INSERT INTO members(name, email) VALUES ('X', NULL);")
        self.refused("INSERT INTO members(name, email) VALUES (NULL, 'x@example.org');")
        self.ok("INSERT INTO members(name, email) VALUES ('Cy', 'cy@example.org');")

    def test_loans(self):
        self.ok("INSERT INTO loans(book_id, member_id, loaned_on, due_on) VALUES (1, 1, '2024-03-01', '2024-03-15');")
        self.refused("INSERT INTO loans(book_id, member_id, loaned_on, due_on) VALUES (1, 1, '2024-03-02', '2024-03-16');")
        self.ok("INSERT INTO loans(book_id, member_id, loaned_on, due_on) VALUES (1, 2, '2024-03-02', '2024-03-16');")
        self.ok("UPDATE loans SET returned_on = '2024-03-10' WHERE book_id = 1 AND member_id = 1;")
        self.ok("INSERT INTO loans(book_id, member_id, loaned_on, due_on) VALUES (1, 1, '2024-04-01', '2024-04-15');")
        self.refused("INSERT INTO loans(book_id, member_id, loaned_on, due_on) VALUES (2, 1, '2024-03-10', '2024-03-01');")
        self.refused("INSERT INTO loans(book_id, member_id, loaned_on, due_on, returned_on) VALUES (2, 1, '2024-03-10', '2024-03-20', '2024-03-09');")
        self.refused("INSERT INTO loans(book_id, member_id, loaned_on, due_on) VALUES (99, 1, '2024-03-10', '2024-03-20');")
        self.refused("INSERT INTO loans(book_id, member_id, loaned_on, due_on) VALUES (2, 99, '2024-03-10', '2024-03-20');")
        self.refused("INSERT INTO loans(book_id, member_id, loaned_on, due_on) VALUES (2, 1, NULL, '2024-03-20');")

    def test_deletes_are_restricted(self):
        self.ok("INSERT INTO loans(book_id, member_id, loaned_on, due_on) VALUES (3, 2, '2024-03-01', '2024-03-15');")
        self.refused("DELETE FROM authors WHERE id = 2;")
        self.refused("DELETE FROM books WHERE id = 3;")
        self.refused("DELETE FROM members WHERE id = 2;")
        self.ok("DELETE FROM members WHERE id = 1;")

    def test_available_books(self):
        self.ok("""
            INSERT INTO loans(book_id, member_id, loaned_on, due_on) VALUES (1, 1, '2024-03-01', '2024-03-15');
            INSERT INTO loans(book_id, member_id, loaned_on, due_on, returned_on) VALUES (3, 1, '2024-02-01', '2024-02-15', '2024-02-10');
            INSERT INTO loans(book_id, member_id, loaned_on, due_on) VALUES (3, 2, '2024-03-01', '2024-03-15');
            INSERT INTO loans(book_id, member_id, loaned_on, due_on) VALUES (3, 1, '2024-03-01', '2024-03-15');
        """)
        rows = self.ok("SELECT id, title, available FROM available_books ORDER BY id;")
        self.assertEqual([(r["id"], r["title"], r["available"]) for r in rows], [
            (1, "A Wizard of Earthsea", 1), (2, "The Dispossessed", 1), (3, "Invisible Cities", 1)])


if __name__ == "__main__":
    unittest.main()
