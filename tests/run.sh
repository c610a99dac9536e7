#!/usr/bin/env bash
# The body of `make test`: start private PostgreSQL and Redis servers on free
# loopback ports, run every test (tests/run.py), and stop the servers again,
# also when a test fails or the run is interrupted.
#
#   BUILD=build BIN=bin/orchestrator tests/run.sh [NAME-FILTER...]
#
# TEST_PG_PORT and TEST_REDIS_PORT_BASE choose where the search for free
# ports starts (54330 and 63800), for several checkouts testing at once.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
BIN=${BIN:-bin/orchestrator}
svc_dir=$BUILD/test-services

pick_port() {
	local p=$1
	while (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; do p=$((p + 1)); done
	echo "$p"
}

stop_services() { tests/env/services.sh stop --dir "$svc_dir" >/dev/null 2>&1 || true; }
trap stop_services EXIT
trap 'exit 130' INT TERM

stop_services
rm -rf "$svc_dir"
pg_port=$(pick_port "${TEST_PG_PORT:-54330}")
redis_port=$(pick_port "${TEST_REDIS_PORT_BASE:-63800}")
tests/env/services.sh start --dir "$svc_dir" --pg-port "$pg_port" --redis-port "$redis_port" >/dev/null || {
	echo "could not start the test services"
	echo "0 passed, 1 failed"
	exit 1
}

export TEST_PG_BASE="postgresql://orchestrator@127.0.0.1:$pg_port"
export TEST_REDIS_PORT="$redis_port"
python3 tests/run.py --build "$BUILD" --bin "$BIN" "$@"
