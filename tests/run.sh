#!/usr/bin/env bash
# The body of `make test`: start private PostgreSQL and Redis servers on free
# loopback ports, run every test (tests/run.py), and stop the servers again,
# also when a test fails or the run is interrupted.
#
#   BUILD=build BIN=bin/orchestrator tests/run.sh [NAME-FILTER...]
#
# TEST_PG_PORT and TEST_REDIS_PORT_BASE choose where the search for free
# ports starts (25432 and 26379), for several checkouts testing at once.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
BIN=${BIN:-bin/orchestrator}
svc_dir=$BUILD/test-services

# the first port from $1 that can be bound on 127.0.0.1 (ports below the
# kernel's ephemeral range, so no outgoing connection holds them)
pick_port() {
	python3 - "$1" <<'PY'
import socket, sys
p = int(sys.argv[1])
while True:
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
        break
    except OSError:
        p += 1
    finally:
        s.close()
print(p)
PY
}

docker_dir=$BUILD/docker
docker_started=0
stop_services() {
	tests/env/services.sh stop --dir "$svc_dir" >/dev/null 2>&1 || true
	[ $docker_started = 1 ] && { tests/env/docker.sh stop --dir "$docker_dir" >/dev/null 2>&1 || true; }
}
trap stop_services EXIT
trap 'exit 130' INT TERM

stop_services
rm -rf "$svc_dir"
mkdir -p "$BUILD"
# another checkout testing at once may take a free port between the pick and
# the servers' start: then the next free ports are tried, a few times
pg_port=${TEST_PG_PORT:-25432}
redis_port=${TEST_REDIS_PORT_BASE:-26379}
for attempt in 1 2 3 4 5; do
	pg_port=$(pick_port "$pg_port")
	redis_port=$(pick_port "$redis_port")
	tests/env/services.sh start --dir "$svc_dir" --pg-port "$pg_port" --redis-port "$redis_port" \
		>/dev/null 2>"$BUILD/services.err" && break
	stop_services
	if [ $attempt = 5 ] || ! grep -q "is taken by another program" "$BUILD/services.err"; then
		cat "$BUILD/services.err"
		echo "could not start the test services"
		echo "0 passed, 1 failed"
		exit 1
	fi
	pg_port=$((pg_port + 1))
	redis_port=$((redis_port + 1))
done

export TEST_PG_BASE="postgresql://orchestrator@127.0.0.1:$pg_port"
export TEST_REDIS_PORT="$redis_port"

# tests named *docker* get a private Docker engine (its data root and the
# images it builds are kept in $BUILD/docker for the next run)
if python3 tests/run.py --build "$BUILD" --list "$@" | grep -q docker; then
	docker_started=1
	t0=$(date +%s)
	if vars=$(tests/env/docker.sh start --dir "$docker_dir" 2>"$docker_dir.log"); then
		eval "$vars"
		echo "private Docker engine up in $(( $(date +%s) - t0 ))s ($DOCKER_HOST)"
	else
		export ORCH_TEST_DOCKER_SKIP="the private Docker engine could not start: $(tail -1 "$docker_dir.log")"
		echo "skipped: $ORCH_TEST_DOCKER_SKIP (the docker tests say so)"
	fi
fi
python3 tests/run.py --build "$BUILD" --bin "$BIN" "$@"
