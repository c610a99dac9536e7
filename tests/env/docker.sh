#!/usr/bin/env bash
# A private Docker engine for the tests (Debian 12's docker.io), started by
# hand like the test PostgreSQL: its own data root, exec root and unix
# socket, no bridge and no iptables rules (the host's network and firewall
# are left alone), cgroup driver cgroupfs. No registry is reachable, so the
# images the tests use are made here and kept with the data root, so the
# next run finds them:
#   orch-test/busybox:<hash>   busybox-static with a user 1000 (sandbox tests)
#   orch-test/bookworm:<hash>  debootstrap --variant=minbase bookworm, imported
#   orch-test/<name>:<hash>    tests/env/images/<name>/Dockerfile built on it
# The debootstrapped root is also kept in ORCH_DOCKER_CACHE (default
# /var/tmp/orchestrator-docker-cache), shared by every checkout, since it is
# the slow step (about 75 s).
#
#   docker.sh start  [--dir DIR] [--images "busybox worker ..."] [--userns-remap USER]
#                    prints the variables for the tests (DOCKER_HOST,
#                    ORCH_TEST_IMAGE_<NAME>) as `export` lines
# Networks the engine makes (compose's) take their subnets from a /16 of
# 10.0.0.0/8 chosen by the folder, so two checkouts' engines do not hand out
# the same subnet to two bridges of this host.
#   docker.sh stop   [--dir DIR]
#   docker.sh status [--dir DIR]
set -euo pipefail

cmd=${1:-}
shift || true
dir=build/docker
images="busybox worker"
remap=
while [ $# -gt 0 ]; do
	case $1 in
	--dir) dir=$2; shift 2 ;;
	--images) images=$2; shift 2 ;;
	--userns-remap) remap=$2; shift 2 ;;
	*) echo "docker.sh: unknown option $1" >&2; exit 2 ;;
	esac
done
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
cache=${ORCH_DOCKER_CACHE:-/var/tmp/orchestrator-docker-cache}
sock=$dir/docker.sock
pidfile=$dir/dockerd.pid
DOCKER_BIN=/usr/bin/docker
[ -x "$DOCKER_BIN" ] || DOCKER_BIN=$(command -v docker || echo docker)
D() { "$DOCKER_BIN" -H "unix://$sock" "$@"; }
log() { echo "docker.sh: $*" >&2; }
# the Debian mirror apt already uses
mirror() {
	local m
	m=$(sed -n 's/^URIs: *\([^ ]*\/debian\)\/\{0,1\}$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1)
	[ -n "$m" ] || m=$(awk '$1=="deb" && $2 ~ /\/debian\/?$/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null)
	echo "${m:-http://deb.debian.org/debian}"
}

running() { [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

install_pkgs() {
	local need=()
	command -v dockerd >/dev/null || [ -x /usr/sbin/dockerd ] || need+=(docker.io)
	command -v docker-compose >/dev/null || need+=(docker-compose)
	command -v debootstrap >/dev/null || [ -x /usr/sbin/debootstrap ] || need+=(debootstrap)
	[ -x /bin/busybox ] || need+=(busybox-static)
	[ ${#need[@]} -eq 0 ] && return 0
	if [ "$(id -u)" != 0 ]; then
		log "missing ${need[*]} and not root: apt-get install ${need[*]}"
		return 1
	fi
	log "installing ${need[*]}"
	ls /var/lib/apt/lists/*_Packages* >/dev/null 2>&1 || apt-get update -qq >/dev/null
	# a package's service must not start the system's own engine: ours is private
	local policy=/usr/sbin/policy-rc.d made=0
	if [ ! -e $policy ]; then
		printf '#!/bin/sh\nexit 101\n' >$policy && chmod 755 $policy && made=1
	fi
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" \
		>"$dir/apt.log" 2>&1 || { [ $made = 1 ] && rm -f $policy; tail -5 "$dir/apt.log" >&2; return 1; }
	[ $made = 1 ] && rm -f $policy
	return 0
}

start_daemon() {
	running && return 0
	[ "$(id -u)" = 0 ] || { log "the private Docker engine needs root"; return 1; }
	mkdir -p "$dir/data" "$dir/exec"
	rm -f "$sock"
	# --bridge=none: the default network is "none"; --iptables=false: the
	# host's firewall is left alone
	local h pool
	h=$(printf %s "$dir" | md5sum | cut -c1-8)
	pool=10.$((0x${h:0:4} % 200 + 20)).0.0/16
	setsid /usr/sbin/dockerd --data-root "$dir/data" --exec-root "$dir/exec" --pidfile "$pidfile" \
		-H "unix://$sock" --iptables=false --ip6tables=false --bridge=none --ip-masq=false \
		--storage-driver="${ORCH_DOCKER_STORAGE:-overlay2}" --exec-opt native.cgroupdriver=cgroupfs \
		--cgroup-parent "orch-dockerd-$h" --default-address-pool "base=$pool,size=24" \
		${remap:+--userns-remap "$remap"} \
		</dev/null >>"$dir/dockerd.log" 2>&1 &
	local pid=$!
	for _ in $(seq 120); do
		D version >/dev/null 2>&1 && return 0
		kill -0 $pid 2>/dev/null || break
		sleep 0.5
	done
	log "dockerd did not come up; $dir/dockerd.log says:"
	tail -5 "$dir/dockerd.log" >&2
	return 1
}

have_image() { D image inspect "$1" >/dev/null 2>&1; }
hash_of() { cat "$@" | sha256sum | cut -c1-12; }

# orch-test/busybox: busybox-static with a user 1000
img_busybox() {
	local tag
	tag=orch-test/busybox:$(hash_of /bin/busybox "$0")
	if ! have_image "$tag"; then
		local r=$dir/rootfs-busybox
		rm -rf "$r"
		mkdir -p "$r"/{bin,tmp,workspace,etc,proc,sys,dev,usr/bin,opt}
		cp /bin/busybox "$r/bin/busybox"
		for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox "$r/bin/$a"; done
		printf 'root:x:0:0:root:/root:/bin/sh\nsbx:x:1000:1000:sbx:/tmp:/bin/sh\n' >"$r/etc/passwd"
		printf 'root:x:0:\nsbx:x:1000:\n' >"$r/etc/group"
		chmod 1777 "$r/tmp"
		tar -C "$r" -c . | D import -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
			-c 'CMD ["sh"]' - "$tag" >/dev/null
		rm -rf "$r"
		log "made $tag"
	fi
	echo "export ORCH_TEST_IMAGE_BUSYBOX=$tag"
}

# orch-test/bookworm: a debootstrapped Debian 12 (the cache keeps its tarball)
BOOKWORM=
img_bookworm() {
	local m tar tag
	m=$(mirror)
	mkdir -p "$cache"
	tar=$cache/bookworm-minbase-$(printf %s "$m" | md5sum | cut -c1-8).tar
	if [ ! -s "$tar" ]; then
		local r=$cache/rootfs-bookworm.$$
		rm -rf "$r"
		log "debootstrap --variant=minbase bookworm from $m (about 75 s, once per machine)"
		if ! debootstrap --variant=minbase bookworm "$r" "$m" >"$dir/debootstrap.log" 2>&1; then
			tail -5 "$dir/debootstrap.log" >&2
			rm -rf "$r"
			return 1
		fi
		rm -rf "$r"/var/cache/apt/archives/*.deb "$r"/var/lib/apt/lists/*_Packages
		tar -C "$r" -cf "$tar.tmp" . && mv "$tar.tmp" "$tar"
		rm -rf "$r"
	fi
	tag=orch-test/bookworm:$(printf '%s' "$(stat -c %s-%Y "$tar")" | sha256sum | cut -c1-12)
	if ! have_image "$tag"; then
		D import -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
			-c 'CMD ["bash"]' "$tar" "$tag" >/dev/null
		log "made $tag"
	fi
	BOOKWORM=$tag
	echo "export ORCH_TEST_IMAGE_BOOKWORM=$tag"
}

# orch-test/NAME: tests/env/images/NAME/Dockerfile on the bookworm base
img_dockerfile() {
	local name=$1 ctx=$here/images/$1 tag var
	[ -n "$BOOKWORM" ] || img_bookworm >/dev/null
	tag=orch-test/$name:$( (cd "$ctx" && find . -type f | sort | xargs cat; echo "$BOOKWORM") | sha256sum | cut -c1-12)
	if ! have_image "$tag"; then
		log "docker build $tag (--network host reaches the Debian mirror)"
		D build -q --network host --build-arg "BASE=$BOOKWORM" --build-arg "MIRROR=$(mirror)" \
			-t "$tag" "$ctx" >"$dir/build-$name.log" 2>&1 || { tail -20 "$dir/build-$name.log" >&2; return 1; }
	fi
	var=$(printf %s "$name" | tr 'a-z-' 'A-Z_')
	echo "export ORCH_TEST_IMAGE_$var=$tag"
}

stop_daemon() {
	running || return 0
	local p
	p=$(cat "$pidfile")
	# what the tests left behind goes first
	D ps -aq 2>/dev/null | xargs -r "$DOCKER_BIN" -H "unix://$sock" rm -f >/dev/null 2>&1 || true
	kill "$p"
	for _ in $(seq 60); do kill -0 "$p" 2>/dev/null || break; sleep 0.5; done
	kill -0 "$p" 2>/dev/null && { log "dockerd $p still running after 30 s"; return 1; }
	while mountpoint -q "$dir/exec/netns/default" 2>/dev/null; do umount "$dir/exec/netns/default" || break; done
	return 0
}

case $cmd in
start)
	install_pkgs
	start_daemon
	echo "export DOCKER_HOST=unix://$sock"
	for i in $images; do
		case $i in
		busybox) img_busybox ;;
		bookworm) img_bookworm ;;
		*) img_dockerfile "$i" ;;
		esac
	done
	;;
stop) stop_daemon ;;
status)
	if running; then
		D info --format 'dockerd {{.ServerVersion}}: storage {{.Driver}}, cgroup {{.CgroupDriver}}, runtime {{.DefaultRuntime}}'
		D images --format '{{.Repository}}:{{.Tag}} {{.Size}}'
	else
		echo "dockerd not running"
		exit 1
	fi
	;;
*)
	echo "usage: docker.sh start|stop|status [--dir DIR] [--images LIST]" >&2
	exit 2
	;;
esac
