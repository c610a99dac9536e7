#!/bin/sh
# First start: a cluster whose superuser is POSTGRES_USER with
# POSTGRES_PASSWORD (scram-sha-256 from other hosts, trust on the local
# socket, as the official image does) and a database POSTGRES_DB.
set -eu
if [ "${1:-}" = postgres ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
	user=${POSTGRES_USER:-postgres}
	db=${POSTGRES_DB:-$user}
	[ -n "${POSTGRES_PASSWORD:-}" ] || { echo "POSTGRES_PASSWORD is not set" >&2; exit 1; }
	pw=$(mktemp)
	printf '%s\n' "$POSTGRES_PASSWORD" >"$pw"
	initdb -D "$PGDATA" -U "$user" --pwfile="$pw" -A scram-sha-256 --auth-local=trust -E UTF8 \
		--no-instructions >/dev/null
	rm -f "$pw"
	echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
	echo "listen_addresses = '*'" >>"$PGDATA/postgresql.conf"
	if [ "$db" != postgres ]; then
		echo "CREATE DATABASE \"$db\" OWNER \"$user\"" |
			postgres --single -D "$PGDATA" -j postgres >/dev/null
	fi
	echo "docker-entrypoint: made the cluster (superuser $user, database $db)"
fi
exec "$@"
