-- Reports over the shop's tables. Cancelled orders never count.

-- the items of orders that were not cancelled
CREATE VIEW sold_items AS
SELECT oi.order_id, oi.product_id, oi.qty, oi.unit_cents, o.placed_at
FROM order_items oi
JOIN orders o ON o.id = oi.order_id
WHERE o.status <> 'cancelled';

-- per product: its suppliers, the primary one, units sold and revenue.
-- Suppliers and sales are looked up separately: joining both to products
-- would repeat every sold item once per supplier.
CREATE VIEW product_sales AS
SELECT p.id AS product_id,
       p.sku,
       p.name,
       (SELECT group_concat(name, ', ')
        FROM (SELECT s2.name FROM product_suppliers ps2
              JOIN suppliers s2 ON s2.id = ps2.supplier_id
              WHERE ps2.product_id = p.id ORDER BY s2.name)) AS suppliers,
       (SELECT s.name FROM product_suppliers ps
        JOIN suppliers s ON s.id = ps.supplier_id
        WHERE ps.product_id = p.id AND ps.is_primary = 1) AS primary_supplier,
       coalesce(sum(si.qty), 0) AS units,
       coalesce(sum(si.qty * si.unit_cents), 0) AS revenue_cents
FROM products p
LEFT JOIN sold_items si ON si.product_id = p.id
GROUP BY p.id;

-- per supplier: how many products it delivers and the units sold of them
CREATE VIEW supplier_report AS
SELECT s.name AS supplier,
       (SELECT count(*) FROM product_suppliers ps WHERE ps.supplier_id = s.id) AS products,
       coalesce((SELECT sum(si.qty) FROM product_suppliers ps
                 JOIN sold_items si ON si.product_id = ps.product_id
                 WHERE ps.supplier_id = s.id), 0) AS units
FROM suppliers s;

-- per month: revenue and the number of orders
CREATE VIEW monthly_revenue AS
SELECT substr(placed_at, 1, 7) AS month,
       sum(qty * unit_cents) AS revenue_cents,
       count(DISTINCT order_id) AS orders
FROM sold_items
GROUP BY substr(placed_at, 1, 7);
