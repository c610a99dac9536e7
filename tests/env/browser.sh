#!/usr/bin/env bash
# Prepares what the browser tests need and prints two lines: the chromium
# binary and the folder holding node_modules/playwright-core.
#
#   browser.sh BUILD_DIR
#
# Debian's chromium is installed when missing (as root, non-interactively;
# `apt-get update` first on a machine whose lists are empty); playwright-core
# comes from npm into BUILD_DIR/node (never `playwright install`: the
# browser is Debian's). Exits 3 with one line "skipped: <reason>" when
# either cannot be had.
set -uo pipefail
build=${1:?usage: browser.sh BUILD_DIR}
PW_VERSION=1.65.2

chromium=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$chromium" ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "skipped: no chromium, and not root to install it (apt-get install chromium)"
		exit 3
	fi
	export DEBIAN_FRONTEND=noninteractive
	if ! ls /var/lib/apt/lists/*_Packages >/dev/null 2>&1 ||
		! apt-get install -y -q chromium >/tmp/orch-chromium.log 2>&1; then
		apt-get update -q >/tmp/orch-chromium-update.log 2>&1
		apt-get install -y -q chromium >/tmp/orch-chromium.log 2>&1 || {
			echo "skipped: chromium could not be installed (see /tmp/orch-chromium.log)"
			exit 3
		}
	fi
	chromium=$(command -v chromium || true)
	[ -n "$chromium" ] || { echo "skipped: chromium installed but not found"; exit 3; }
fi
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
	echo "skipped: no node and npm"
	exit 3
fi
dir="$build/node"
if [ ! -f "$dir/node_modules/playwright-core/package.json" ] ||
	! grep -q "\"version\": \"$PW_VERSION\"" "$dir/node_modules/playwright-core/package.json"; then
	mkdir -p "$dir"
	(cd "$dir" && [ -f package.json ] || echo '{"private": true}' >package.json)
	if ! (cd "$dir" && npm install --no-audit --no-fund --loglevel=error \
		"playwright-core@$PW_VERSION" >/tmp/orch-npm-playwright.log 2>&1); then
		echo "skipped: npm could not install playwright-core (see /tmp/orch-npm-playwright.log)"
		exit 3
	fi
fi
echo "$chromium"
echo "$(cd "$dir" && pwd)"
