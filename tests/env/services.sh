#!/usr/bin/env bash
# Private PostgreSQL and Redis servers on loopback, for `make run` and
# `make test`. Nothing system-wide is touched: the data lives in one folder,
# the servers listen on 127.0.0.1 only, and `stop` ends them.
#
#   services.sh start [--dir DIR] [--pg-port N] [--redis-port N]
#   services.sh stop  [--dir DIR]
#   services.sh status [--dir DIR]
#
# Defaults: DIR = $ORCH_SERVICES_DIR, else $ORCH_DATA_DIR/services, else
# ~/.local/share/orchestrator/services; ports $ORCH_PG_PORT (54320) and
# $ORCH_REDIS_PORT (63790), the ports of the default DATABASE_URL and
# REDIS_URL. PostgreSQL: superuser and database "orchestrator", trust
# authentication on loopback, default durability (fsync on). Redis:
# appendonly on, so a restart loses nothing.
set -euo pipefail

cmd=${1:-}
shift || true
data_home=${XDG_DATA_HOME:-${HOME:-/root}/.local/share}
dir=${ORCH_SERVICES_DIR:-${ORCH_DATA_DIR:-$data_home/orchestrator}/services}
pg_port=${ORCH_PG_PORT:-54320}
redis_port=${ORCH_REDIS_PORT:-63790}
while [ $# -gt 0 ]; do
	case $1 in
	--dir) dir=$2; shift 2 ;;
	--pg-port) pg_port=$2; shift 2 ;;
	--redis-port) redis_port=$2; shift 2 ;;
	*) echo "services.sh: unknown option $1" >&2; exit 2 ;;
	esac
done
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
if [ -z "$pgbin" ] || [ ! -x "$pgbin/initdb" ]; then
	echo "services.sh: PostgreSQL server binaries not found (apt-get install postgresql; 'make deps' does it)" >&2
	exit 1
fi

is_root() { [ "$(id -u)" = 0 ]; }
as_pg() { if is_root; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi; }
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# PostgreSQL refuses to run as root; as root it runs as the 'postgres' user,
# which must be able to reach its data folder. When `dir` sits under a private
# folder (mktemp -d is 0700), the data goes to /var/tmp with a link here.
pg_data() {
	local d="$dir/pg"
	if is_root && [ ! -e "$d" ]; then
		mkdir -p "$d"
		chown postgres:postgres "$d"
		if ! runuser -u postgres -- test -w "$d" 2>/dev/null; then
			rmdir "$d"
			local real="/var/tmp/orchestrator-pg/$(printf %s "$dir" | md5sum | cut -c1-16)"
			rm -rf "$real"
			mkdir -p "$real"
			chmod 711 /var/tmp/orchestrator-pg
			chown postgres:postgres "$real"
			ln -sfn "$real" "$d"
		fi
	fi
	mkdir -p "$d"
	# the real path: postgres may not be able to pass through `dir` to the link
	readlink -f "$d"
}

pg_start() {
	local d
	d=$(pg_data)
	if [ ! -f "$d/PG_VERSION" ]; then
		as_pg "$pgbin/initdb" -D "$d" -U orchestrator -A trust -E UTF8 --no-instructions >"$dir/initdb.log" 2>&1 || {
			cat "$dir/initdb.log" >&2
			exit 1
		}
	fi
	# settings are rewritten on every start so the port can change
	cat >"$dir/pg.conf.tmp" <<CONF
listen_addresses = '127.0.0.1'
port = $pg_port
unix_socket_directories = '$(readlink -f "$d")'
max_connections = 200
shared_buffers = 128MB
logging_collector = off
log_min_messages = warning
CONF
	# read by this shell, written by postgres: `dir` may be closed to postgres
	as_pg tee "$d/orchestrator.conf" <"$dir/pg.conf.tmp" >/dev/null
	rm -f "$dir/pg.conf.tmp"
	grep -q "^include_if_exists = 'orchestrator.conf'" "$d/postgresql.conf" ||
		as_pg sh -c "echo \"include_if_exists = 'orchestrator.conf'\" >> '$d/postgresql.conf'"
	if as_pg "$pgbin/pg_ctl" -D "$d" status >/dev/null 2>&1; then
		echo "postgresql already running (port $(pg_port_of "$d"))"
		return 0
	fi
	if port_busy "$pg_port"; then
		echo "services.sh: port $pg_port is taken by another program; set ORCH_PG_PORT (and DATABASE_URL) to a free port" >&2
		exit 1
	fi
	as_pg "$pgbin/pg_ctl" -D "$d" -l "$d/server.log" -w -t 60 start >/dev/null || {
		tail -20 "$d/server.log" >&2
		exit 1
	}
	if ! "$pgbin/psql" -h 127.0.0.1 -p "$pg_port" -U orchestrator -d postgres -tAc \
		"select 1 from pg_database where datname='orchestrator'" | grep -q 1; then
		"$pgbin/createdb" -h 127.0.0.1 -p "$pg_port" -U orchestrator orchestrator
	fi
	echo "postgresql on 127.0.0.1:$pg_port (data $d)"
}

pg_port_of() { sed -n "s/^port = //p" "$1/orchestrator.conf" 2>/dev/null | tail -1; }

pg_stop() {
	local d
	d=$(readlink -f "$dir/pg")
	[ -f "$d/PG_VERSION" ] || return 0
	if as_pg "$pgbin/pg_ctl" -D "$d" status >/dev/null 2>&1; then
		as_pg "$pgbin/pg_ctl" -D "$d" -m fast -w stop >/dev/null && echo "postgresql stopped"
	fi
}

redis_start() {
	local r="$dir/redis"
	mkdir -p "$r"
	if [ -f "$r/redis.pid" ] && kill -0 "$(cat "$r/redis.pid")" 2>/dev/null; then
		echo "redis already running"
		return 0
	fi
	if port_busy "$redis_port"; then
		echo "services.sh: port $redis_port is taken by another program; set ORCH_REDIS_PORT (and REDIS_URL) to a free port" >&2
		exit 1
	fi
	cat >"$r/redis.conf" <<CONF
bind 127.0.0.1
port $redis_port
dir $r
daemonize yes
pidfile $r/redis.pid
logfile $r/redis.log
appendonly yes
appendfsync everysec
save ""
protected-mode yes
CONF
	redis-server "$r/redis.conf"
	for _ in $(seq 100); do
		redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break
		sleep 0.1
	done
	redis-cli -p "$redis_port" ping >/dev/null || { tail -20 "$r/redis.log" >&2; exit 1; }
	echo "redis on 127.0.0.1:$redis_port (data $r)"
}

redis_stop() {
	local r="$dir/redis"
	[ -f "$r/redis.pid" ] || return 0
	local pid
	pid=$(cat "$r/redis.pid")
	if kill -0 "$pid" 2>/dev/null; then
		kill "$pid"
		for _ in $(seq 100); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		echo "redis stopped"
	fi
	rm -f "$r/redis.pid"
}

case $cmd in
start) pg_start; redis_start ;;
stop) redis_stop; pg_stop ;;
status)
	d="$dir/pg"
	if [ -f "$d/PG_VERSION" ] && as_pg "$pgbin/pg_ctl" -D "$d" status >/dev/null 2>&1; then
		echo "postgresql: running on 127.0.0.1:$(pg_port_of "$d")"
	else
		echo "postgresql: stopped"
	fi
	r="$dir/redis"
	if [ -f "$r/redis.pid" ] && kill -0 "$(cat "$r/redis.pid")" 2>/dev/null; then
		echo "redis: running on 127.0.0.1:$(sed -n 's/^port //p' "$r/redis.conf")"
	else
		echo "redis: stopped"
	fi
	;;
*)
	echo "usage: services.sh start|stop|status [--dir DIR] [--pg-port N] [--redis-port N]" >&2
	exit 2
	;;
esac
