-- Warehouse stock kept by triggers: products.stock is always the sum of the
-- 'in' movements minus the 'out' movements; movements are append-only.
-- The application runs with PRAGMA foreign_keys = ON.

CREATE TABLE products (
  id            INTEGER PRIMARY KEY,
  sku           TEXT NOT NULL UNIQUE,
  name          TEXT NOT NULL,
  stock         INTEGER NOT NULL DEFAULT 0 CHECK (stock >= 0),
  reorder_level INTEGER NOT NULL DEFAULT 5
);

CREATE TABLE movements (
  id         INTEGER PRIMARY KEY,
  product_id INTEGER NOT NULL REFERENCES products(id),
  kind       TEXT NOT NULL CHECK (kind IN ('in', 'out')),
  qty        INTEGER NOT NULL CHECK (qty > 0),
  at         TEXT NOT NULL DEFAULT (datetime('now'))
);
CREATE INDEX movements_product ON movements(product_id);

CREATE TRIGGER movements_check_out BEFORE INSERT ON movements
WHEN NEW.kind = 'out' AND NEW.qty > (SELECT stock FROM products WHERE id = NEW.product_id)
BEGIN
  SELECT RAISE(ABORT, 'insufficient stock');
END;

CREATE TRIGGER movements_apply AFTER INSERT ON movements
BEGIN
  UPDATE products
  SET stock = stock + CASE NEW.kind WHEN 'in' THEN NEW.qty ELSE -NEW.qty END
  WHERE id = NEW.product_id;
END;

CREATE TRIGGER movements_check_undo BEFORE DELETE ON movements
WHEN OLD.kind = 'in' AND OLD.qty > (SELECT stock FROM products WHERE id = OLD.product_id)
BEGIN
  SELECT RAISE(ABORT, 'insufficient stock');
END;

CREATE TRIGGER movements_undo AFTER DELETE ON movements
BEGIN
  UPDATE products
  SET stock = stock - CASE OLD.kind WHEN 'in' THEN OLD.qty ELSE -OLD.qty END
  WHERE id = OLD.product_id;
END;

CREATE TRIGGER movements_append_only BEFORE UPDATE ON movements
BEGIN
  SELECT RAISE(ABORT, 'movements are append-only');
END;

CREATE VIEW low_stock(sku, name, stock, reorder_level) AS
  SELECT sku, name, stock, reorder_level FROM products WHERE stock < reorder_level;

CREATE VIEW product_activity(sku, received, shipped, movements) AS
  SELECT p.sku,
         coalesce(sum(CASE m.kind WHEN 'in' THEN m.qty END), 0),
         coalesce(sum(CASE m.kind WHEN 'out' THEN m.qty END), 0),
         count(m.id)
  FROM products p LEFT JOIN movements m ON m.product_id = p.id
  GROUP BY p.id;
