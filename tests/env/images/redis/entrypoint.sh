#!/bin/sh
# redis-server without a configuration file, reachable from other hosts (the
# official image turns protected mode off the same way).
set -eu
if [ "${1:-}" = redis-server ]; then
	shift
	set -- redis-server --protected-mode no "$@"
fi
exec "$@"
