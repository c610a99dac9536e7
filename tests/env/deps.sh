#!/usr/bin/env bash
# Installs the Debian packages orchestrator needs to build, test and run,
# only those that are missing, non-interactively. Used by `make run`,
# `make test`, `make asan` and `make bench`; safe to run again.
set -euo pipefail

PKGS=(
	build-essential pkg-config git ca-certificates
	libpq-dev libjansson-dev libevent-dev libhiredis-dev libcurl4-openssl-dev
	libgit2-dev libsodium-dev libseccomp-dev libcmocka-dev
	postgresql postgresql-client redis-server python3 util-linux iproute2 procps
	# toolchains that workers (and the eval tasks) use inside the sandbox
	golang-go sqlite3
	curl # ../shared/llama/start.sh waits for llama-server's /health with it
	clang libclang-rt-dev # the clang build and the libFuzzer targets (tests/fuzz)
)
# node and npm may come from elsewhere (NodeSource): Debian's only when absent
# from /usr, the part of the host a sandbox sees (a node under $HOME, as nvm
# installs it, is not visible there)
[ -x /usr/bin/node ] || [ -x /usr/local/bin/node ] || PKGS+=(nodejs)
[ -x /usr/bin/npm ] || [ -x /usr/local/bin/npm ] || PKGS+=(npm)

missing=()
for p in "${PKGS[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing+=("$p")
	fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "orchestrator: installing missing Debian packages: ${missing[*]}" >&2
SUDO=()
if [ "$(id -u)" != 0 ]; then
	if command -v sudo >/dev/null 2>&1; then
		SUDO=(sudo -n)
	else
		echo "orchestrator: these packages are missing and this is not root: ${missing[*]}" >&2
		echo "  install them with: apt-get install -y ${missing[*]}" >&2
		exit 1
	fi
fi

export DEBIAN_FRONTEND=noninteractive
apt_install() {
	"${SUDO[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
}
# A fresh machine may have empty package lists: update once, then install.
if ! ls /var/lib/apt/lists/*_Packages >/dev/null 2>&1 || ! apt_install >/tmp/orch-apt.log 2>&1; then
	"${SUDO[@]}" apt-get update -q >/tmp/orch-apt-update.log 2>&1 || {
		cat /tmp/orch-apt-update.log >&2
		echo "orchestrator: apt-get update failed (no network to the Debian mirror?)" >&2
		exit 1
	}
	apt_install >/tmp/orch-apt.log 2>&1 || {
		tail -20 /tmp/orch-apt.log >&2
		echo "orchestrator: apt-get install failed; see /tmp/orch-apt.log" >&2
		exit 1
	}
fi
echo "orchestrator: packages installed" >&2
