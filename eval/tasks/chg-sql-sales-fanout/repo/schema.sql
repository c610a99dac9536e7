-- The shop's tables (SQLite). Run with PRAGMA foreign_keys = ON.

CREATE TABLE products (
  id          INTEGER PRIMARY KEY,
  sku         TEXT NOT NULL UNIQUE,
  name        TEXT NOT NULL,
  price_cents INTEGER NOT NULL CHECK (price_cents >= 0)
);

CREATE TABLE suppliers (
  id   INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE
);

-- which suppliers deliver a product; at most one is its primary supplier
CREATE TABLE product_suppliers (
  product_id  INTEGER NOT NULL REFERENCES products(id),
  supplier_id INTEGER NOT NULL REFERENCES suppliers(id),
  is_primary  INTEGER NOT NULL DEFAULT 0 CHECK (is_primary IN (0, 1)),
  PRIMARY KEY (product_id, supplier_id)
);
CREATE UNIQUE INDEX one_primary_supplier ON product_suppliers(product_id) WHERE is_primary = 1;

CREATE TABLE orders (
  id        INTEGER PRIMARY KEY,
  placed_at TEXT NOT NULL,   -- YYYY-MM-DD HH:MM:SS
  status    TEXT NOT NULL CHECK (status IN ('open', 'paid', 'shipped', 'cancelled'))
);

CREATE TABLE order_items (
  order_id   INTEGER NOT NULL REFERENCES orders(id),
  product_id INTEGER NOT NULL REFERENCES products(id),
  qty        INTEGER NOT NULL CHECK (qty > 0),
  unit_cents INTEGER NOT NULL CHECK (unit_cents >= 0),  -- the price when ordered
  PRIMARY KEY (order_id, product_id)
);
CREATE INDEX order_items_product ON order_items(product_id);
