#!/bin/sh
# The tests of the reports: sh tests/run.sh (needs the sqlite3 tool).
# Builds a database from schema.sql, views.sql and tests/fixture.sql and
# compares each query's output with what it should be.
set -u
cd "$(dirname "$0")/.."
db=$(mktemp)
trap 'rm -f "$db"' EXIT
cat schema.sql views.sql tests/fixture.sql | sqlite3 -bail "$db" || { echo "FAIL: could not build the database"; exit 1; }

n=0
fails=0
check() { # check NAME SQL EXPECTED
	n=$((n + 1))
	got=$(sqlite3 -bail "$db" "$2")
	if [ "$got" = "$3" ]; then
		echo "ok $n - $1"
	else
		fails=$((fails + 1))
		echo "not ok $n - $1"
		printf '# got:\n%s\n# want:\n%s\n' "$got" "$3"
	fi
}

check "product_sales" \
	"SELECT product_id, sku, name, suppliers, primary_supplier, units, revenue_cents FROM product_sales ORDER BY product_id;" \
	"1|MUG|mug|Acme|Acme|3|2400
2|TEE|t-shirt|Bolt & Co|Bolt & Co|3|5900
3|CAP|cap|||1|1500"

check "supplier_report" \
	"SELECT supplier, products, units FROM supplier_report ORDER BY supplier;" \
	"Acme|1|3
Bolt & Co|1|3"

check "monthly_revenue" \
	"SELECT month, revenue_cents, orders FROM monthly_revenue ORDER BY month;" \
	"2024-01|4300|2
2024-02|5500|1"

check "cancelled orders never count" \
	"SELECT count(*) FROM sold_items WHERE order_id = 3;" \
	"0"

check "a product without sales" \
	"INSERT INTO products VALUES (9, 'PEN', 'pen', 100); SELECT units, revenue_cents FROM product_sales WHERE product_id = 9;" \
	"0|0"

check "a product with several suppliers counts each sale once" \
	"INSERT INTO product_suppliers VALUES (2, 1, 0);
	 SELECT suppliers, primary_supplier, units, revenue_cents FROM product_sales WHERE product_id = 2;" \
	"Acme, Bolt & Co|Bolt & Co|3|5900"

echo "1..$n"
[ $fails -eq 0 ]
