-- The ledger's reports. Safe to run again.
CREATE VIEW IF NOT EXISTS balances(account, cents) AS
  SELECT account, sum(cents) FROM transactions GROUP BY account;

CREATE VIEW IF NOT EXISTS monthly(month, account, cents) AS
  SELECT substr(day, 1, 7), account, sum(cents) FROM transactions GROUP BY substr(day, 1, 7), account;
