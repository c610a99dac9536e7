-- The ledger's one table; amounts in whole cents. Safe to run again.
CREATE TABLE IF NOT EXISTS transactions (
  id      INTEGER PRIMARY KEY,
  day     TEXT NOT NULL CHECK (day = date(day, '+0 days')),
  account TEXT NOT NULL CHECK (account <> '' AND account NOT GLOB '*[^A-Za-z0-9:_-]*'),
  cents   INTEGER NOT NULL,
  memo    TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS transactions_day ON transactions(day);
