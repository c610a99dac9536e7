-- Views over employees(id, name, manager_id): the chain of managers above
-- each person, the size of each manager's team, each person's path from the top.

CREATE VIEW chain(employee_id, manager_id, depth) AS
WITH RECURSIVE up(employee_id, manager_id, depth) AS (
  SELECT id, manager_id, 1 FROM employees WHERE manager_id IS NOT NULL
  UNION ALL
  SELECT up.employee_id, e.manager_id, up.depth + 1
  FROM up JOIN employees e ON e.id = up.manager_id
  WHERE e.manager_id IS NOT NULL
)
SELECT employee_id, manager_id, depth FROM up;

CREATE VIEW team_size(manager_id, reports) AS
SELECT manager_id, count(*) FROM chain GROUP BY manager_id;

CREATE VIEW org_path(employee_id, path) AS
WITH RECURSIVE down(id, path) AS (
  SELECT id, name FROM employees WHERE manager_id IS NULL
  UNION ALL
  SELECT e.id, down.path || ' > ' || e.name
  FROM employees e JOIN down ON e.manager_id = down.id
)
SELECT id, path FROM down;
