-- The three customers with the largest total order amount in each country
-- (cancelled orders left out; equal totals ranked by name).
WITH totals AS (
  SELECT c.country, c.name, sum(o.amount) AS total
  FROM customers c
  JOIN orders o ON o.customer_id = c.id
  WHERE o.status <> 'cancelled'
  GROUP BY c.id
),
ranked AS (
  SELECT country, name, total,
         row_number() OVER (PARTITION BY country ORDER BY total DESC, name) AS rank
  FROM totals
)
SELECT country, name, total, rank
FROM ranked
WHERE rank <= 3
ORDER BY country, rank;
