#!/usr/bin/env bash
# orchestrator migrate and the engine's CLI commands, end to end (TAP).
set -u
BIN=${ORCH_BIN:?run through make test}
BASE=${TEST_PG_BASE:?run through make test}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
n=0
fails=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() { n=$((n + 1)); fails=$((fails + 1)); echo "not ok $n - $1"; shift; for l in "$@"; do echo "# $l"; done; }
check() { # check NAME COMMAND... : passes when the command succeeds
	local name=$1
	shift
	if out=$("$@" 2>&1); then ok "$name"; else not_ok "$name" "$out"; fi
}
psql_() { PGOPTIONS="-c client_min_messages=warning" psql -qtAX -v ON_ERROR_STOP=1 "$@"; }
fresh_db() { # fresh_db NAME: drops and creates an empty database, prints its URL
	psql_ "$BASE/postgres" -c "DROP DATABASE IF EXISTS $1 WITH (FORCE)" -c "CREATE DATABASE $1" >/dev/null
	echo "$BASE/$1"
}

# 1. a fresh database gets every migration, once
url=$(fresh_db mig_fresh)
out=$(DATABASE_URL=$url "$BIN" migrate 2>&1)
if echo "$out" | grep -q "applied  001_engine.sql" && [ "$(psql_ "$url" -c 'select count(*) from schema_migrations')" -ge 1 ]; then
	ok "migrate applies to a fresh database"
else
	not_ok "migrate applies to a fresh database" "$out"
fi
out=$(DATABASE_URL=$url "$BIN" migrate 2>&1)
if echo "$out" | grep -q "0 applied now"; then ok "migrate again is a no-op"; else not_ok "migrate again is a no-op" "$out"; fi

# 2. a changed migration file is refused, nothing applied
url=$(fresh_db mig_changed)
mkdir -p "$WORK/m1"
cp migrations/*.sql "$WORK/m1/"
check "migrate from a folder" env DATABASE_URL="$url" "$BIN" migrate --dir "$WORK/m1"
echo "-- edited" >>"$WORK/m1/001_engine.sql"
printf 'CREATE TABLE later_table (x int);\n' >"$WORK/m1/900_later.sql"
out=$(DATABASE_URL=$url "$BIN" migrate --dir "$WORK/m1" 2>&1)
rc=$?
if [ $rc -ne 0 ] && echo "$out" | grep -q "changed after it was applied" &&
	[ "$(psql_ "$url" -c "select count(*) from pg_tables where tablename = 'later_table'")" = 0 ]; then
	ok "a changed applied migration is refused and nothing else runs"
else
	not_ok "a changed applied migration is refused and nothing else runs" "rc=$rc" "$out"
fi

# 3. a failing migration rolls back entirely and names itself
url=$(fresh_db mig_failing)
mkdir -p "$WORK/m2"
cp migrations/*.sql "$WORK/m2/"
printf 'CREATE TABLE half_done (x int);\nSELECT no_such_function();\n' >"$WORK/m2/901_broken.sql"
out=$(DATABASE_URL=$url "$BIN" migrate --dir "$WORK/m2" 2>&1)
rc=$?
if [ $rc -ne 0 ] && echo "$out" | grep -q "901_broken.sql failed and was rolled back" &&
	[ "$(psql_ "$url" -c "select count(*) from pg_tables where tablename = 'half_done'")" = 0 ] &&
	[ "$(psql_ "$url" -c "select count(*) from schema_migrations where version = 901")" = 0 ] &&
	[ "$(psql_ "$url" -c "select count(*) from schema_migrations where version = 1")" = 1 ]; then
	ok "a failing migration is rolled back; earlier ones stay"
else
	not_ok "a failing migration is rolled back; earlier ones stay" "rc=$rc" "$out"
fi

# 4. badly named files and a database newer than the binary are refused
mkdir -p "$WORK/m3"
cp migrations/*.sql "$WORK/m3/"
printf 'select 1;\n' >"$WORK/m3/7_short.sql"
out=$(DATABASE_URL=$url "$BIN" migrate --dir "$WORK/m3" 2>&1)
if [ $? -ne 0 ] && echo "$out" | grep -q "NNN_name.sql"; then ok "a badly named migration is refused"; else not_ok "a badly named migration is refused" "$out"; fi
url=$(fresh_db mig_newer)
DATABASE_URL=$url "$BIN" migrate >/dev/null 2>&1
psql_ "$url" -c "insert into schema_migrations (version, name, checksum) values (999, '999_future.sql', 'x')" >/dev/null
out=$(DATABASE_URL=$url "$BIN" migrate 2>&1)
if [ $? -ne 0 ] && echo "$out" | grep -q "999_future.sql"; then ok "a database newer than the binary is refused"; else not_ok "a database newer than the binary is refused" "$out"; fi

# 5. two migrators at once: the advisory lock serialises them
url=$(fresh_db mig_race)
(DATABASE_URL=$url "$BIN" migrate >"$WORK/race1" 2>&1; echo $? >"$WORK/rc1") &
(DATABASE_URL=$url "$BIN" migrate >"$WORK/race2" 2>&1; echo $? >"$WORK/rc2") &
wait
applied=$(cat "$WORK/race1" "$WORK/race2" | grep -c "applied  001_engine.sql")
if [ "$(cat "$WORK/rc1")" = 0 ] && [ "$(cat "$WORK/rc2")" = 0 ] && [ "$applied" = 1 ]; then
	ok "two concurrent migrators: both succeed, each migration applied once"
else
	not_ok "two concurrent migrators: both succeed, each migration applied once" "$(cat "$WORK/race1" "$WORK/race2")"
fi

# 6. status before and after migrate, and the thread commands
url=$(fresh_db mig_status)
out=$(DATABASE_URL=$url "$BIN" status 2>&1)
if [ $? -ne 0 ] && echo "$out" | grep -q "orchestrator migrate"; then ok "status on an empty database says to migrate"; else not_ok "status on an empty database says to migrate" "$out"; fi
DATABASE_URL=$url "$BIN" migrate >/dev/null 2>&1
out=$(DATABASE_URL=$url "$BIN" status --json 2>&1)
if echo "$out" | python3 -c 'import json,sys; d=json.load(sys.stdin); assert "runs" in d and "engines" in d and "oldest_waiting" in d' 2>/dev/null; then
	ok "status --json is JSON with runs, engines and the oldest waiting run"
else
	not_ok "status --json is JSON with runs, engines and the oldest waiting run" "$out"
fi
out=$(DATABASE_URL=$url "$BIN" status 2>&1)
if echo "$out" | grep -q "^runs .*queued 0" && echo "$out" | grep -q "^engines "; then ok "status prints a readable summary"; else not_ok "status prints a readable summary" "$out"; fi
out=$(DATABASE_URL=$url "$BIN" history no-such-thread 2>&1)
if [ $? -eq 1 ] && echo "$out" | grep -q "no thread with id or key 'no-such-thread'"; then ok "history of an unknown thread is a clear error"; else not_ok "history of an unknown thread is a clear error" "$out"; fi
out=$(DATABASE_URL=postgresql://nobody@127.0.0.1:1/x "$BIN" status 2>&1)
if [ $? -eq 1 ] && echo "$out" | grep -q "cannot connect to PostgreSQL" && echo "$out" | grep -q "DATABASE_URL"; then ok "an unreachable database is a clear error"; else not_ok "an unreachable database is a clear error" "$out"; fi
out=$(DATABASE_URL=postgresql://bob:hunter2@127.0.0.1:1/x "$BIN" status 2>&1)
if ! echo "$out" | grep -q hunter2; then ok "a database password never appears in errors"; else not_ok "a database password never appears in errors" "$out"; fi
out=$(ORCH_ENGINE_THREADS=lots "$BIN" status 2>&1)
if [ $? -eq 2 ] && echo "$out" | grep -q "ORCH_ENGINE_THREADS=lots"; then ok "a bad setting names the variable"; else not_ok "a bad setting names the variable" "$out"; fi
out=$("$BIN" --help 2>&1)
if echo "$out" | grep -q "migrate" && echo "$out" | grep -q "status"; then ok "--help lists the commands"; else not_ok "--help lists the commands" "$out"; fi

for db in mig_fresh mig_changed mig_failing mig_newer mig_race mig_status; do
	psql_ "$BASE/postgres" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1
done
echo "1..$n"
[ $fails -eq 0 ]
