#!/usr/bin/env bash
# A real package manager through the egress proxy: `npm install` of a small
# package from the npm registry this machine is configured with (`npm config
# get registry`), in an ns sandbox whose only way out is the proxy; once with
# the registry allowed, once with it denied. Prints TAP.
set -u
BIN=${ORCH_BIN:-bin/orchestrator}
PKG=is-number
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "1..2"
if ! command -v npm >/dev/null 2>&1; then
	echo "ok 1 # skip skipped: npm is not installed"
	echo "ok 2 # skip skipped: npm is not installed"
	exit 0
fi
registry=$(npm config get registry 2>/dev/null)
registry=${registry%/}
host=$(printf '%s' "$registry" | sed -E 's#^[a-z]+://##; s#[/:].*$##')
if [ -z "$host" ] || ! curl -sS -m 15 -o /dev/null "$registry/$PKG" 2>"$work/reach"; then
	echo "ok 1 # skip skipped: the npm registry $registry cannot be reached from here ($(tr -d '\n' < "$work/reach"))"
	echo "ok 2 # skip skipped: the npm registry $registry cannot be reached from here"
	exit 0
fi
port=$(printf '%s' "$registry" | sed -nE 's#^[a-z]+://[^/:]+:([0-9]+).*#\1#p')
pattern=$host${port:+:$port}

run() { # $1 workspace, then --allow-host patterns
	local ws=$1
	shift
	mkdir -p "$ws"
	"$BIN" sandbox run --mem 1G --timeout 180s --workspace "$ws" "$@" \
		--env "npm_config_registry=$registry/" --env npm_config_update_notifier=false -- \
		npm install --no-audit --no-fund --no-package-lock "$PKG" >"$ws.out" 2>&1
}

# allowed: the package is installed, and the proxy logged the registry
if run "$work/allowed" --allow-host "$pattern" && [ -f "$work/allowed/node_modules/$PKG/package.json" ] &&
	grep -q "sandbox: network: allowed CONNECT $host" "$work/allowed.out"; then
	echo "ok 1 - npm install $PKG from $registry through the proxy, the registry allowed"
else
	echo "not ok 1 - npm install $PKG from $registry through the proxy, the registry allowed"
	sed 's/^/# /' "$work/allowed.out" | tail -30
fi

# denied: npm fails, nothing is installed, and the proxy says why
if ! run "$work/denied" --allow-host example.org && [ ! -e "$work/denied/node_modules/$PKG" ] &&
	grep -q "sandbox: network: denied CONNECT $host:.*not in the project's network policy" "$work/denied.out"; then
	echo "ok 2 - npm install $PKG with the registry denied fails, and the proxy says why"
else
	echo "not ok 2 - npm install $PKG with the registry denied fails, and the proxy says why"
	sed 's/^/# /' "$work/denied.out" | tail -30
fi
