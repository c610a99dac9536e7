-- The schema of a small lending library (SQLite). Foreign keys are enforced
-- by the application: PRAGMA foreign_keys = ON on every connection.

CREATE TABLE authors (
  id   INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE
);

CREATE TABLE books (
  id        INTEGER PRIMARY KEY,
  title     TEXT NOT NULL,
  author_id INTEGER NOT NULL REFERENCES authors(id),
  year      INTEGER CHECK (year IS NULL OR year BETWEEN 1450 AND 2100),
  isbn      TEXT UNIQUE,
  copies    INTEGER NOT NULL DEFAULT 1 CHECK (copies >= 0)
);
CREATE INDEX books_author ON books(author_id);

CREATE TABLE members (
  id    INTEGER PRIMARY KEY,
  name  TEXT NOT NULL,
  email TEXT NOT NULL UNIQUE COLLATE NOCASE
);

CREATE TABLE loans (
  id          INTEGER PRIMARY KEY,
  book_id     INTEGER NOT NULL REFERENCES books(id),
  member_id   INTEGER NOT NULL REFERENCES members(id),
  loaned_on   TEXT NOT NULL,
  due_on      TEXT NOT NULL CHECK (due_on >= loaned_on),
  returned_on TEXT CHECK (returned_on IS NULL OR returned_on >= loaned_on)
);
CREATE INDEX loans_member ON loans(member_id);
-- one open loan of a book per member
CREATE UNIQUE INDEX loans_open ON loans(book_id, member_id) WHERE returned_on IS NULL;

CREATE VIEW available_books(id, title, available) AS
  SELECT b.id, b.title,
         b.copies - (SELECT count(*) FROM loans l WHERE l.book_id = b.id AND l.returned_on IS NULL)
  FROM books b;
