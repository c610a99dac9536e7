#!/usr/bin/env bash
# The docker backend on an engine that remaps user namespaces (dockerd
# --userns-remap): a second private engine (tests/env/docker.sh, its own
# folder in /var/tmp) remaps to the range of a dedicated system user, orch-remap, whose
# /etc/subuid and /etc/subgid entries this test adds once per machine (a
# range below 2^20, apart from the ns backend's ranges). A sandboxed command
# is uid 1000 inside, its uid map is the remapped range, and what it writes
# in the workspace belongs to that range's uid 1000 on the host, not to the
# host's uid 1000. Prints TAP, or a skip line where it cannot run (not
# root, no dockerd, no range to give).
set -u
cd "$(dirname "$0")/../.."
BUILD=${ORCH_BUILD:-build}
BIN=${ORCH_BIN:-bin/orchestrator}
user=orch-remap
n=0
ok() {
	n=$((n + 1))
	if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fi
	[ "$1" = 0 ] || [ -z "${3:-}" ] || printf '%s\n' "$3" | sed 's/^/#   /'
}
skip() {
	echo "1..1"
	echo "ok 1 - docker backend under dockerd --userns-remap # SKIP"
	echo "skipped: $*"
	exit 0
}
[ "$(id -u)" = 0 ] || skip "needs root (a second private Docker engine and /etc/subuid entries)"
[ -z "${ORCH_TEST_DOCKER_SKIP:-}" ] || skip "$ORCH_TEST_DOCKER_SKIP"
[ -x /usr/sbin/dockerd ] || skip "dockerd is not installed (make test installs docker.io for the docker tests)"

# the remap user and its ranges, made once per machine (under a lock: other
# checkouts may be testing at the same time)
exec 9>/run/lock/orchestrator-remap.lock 2>/dev/null || exec 9>/tmp/orchestrator-remap.lock
flock 9
if ! getent passwd "$user" >/dev/null; then
	useradd --system --no-create-home --shell /usr/sbin/nologin "$user" 2>/dev/null ||
		skip "cannot create the system user $user"
fi
# the first 65536-aligned range from 2^17 up that no entry of either file
# overlaps, below 2^20 where the ns backend's ranges start
free_start() {
	python3 - /etc/subuid /etc/subgid <<'PY'
import sys
used = []
for path in sys.argv[1:]:
    try:
        for line in open(path):
            f = line.strip().split(":")
            if len(f) == 3 and f[1].isdigit() and f[2].isdigit():
                used.append((int(f[1]), int(f[1]) + int(f[2])))
    except FileNotFoundError:
        pass
start = 1 << 17
while start + 65536 <= 1 << 20:
    if all(e <= start or s >= start + 65536 for s, e in used):
        print(start)
        break
    start += 65536
PY
}
for f in /etc/subuid /etc/subgid; do
	[ -e $f ] || { touch $f && chmod 644 $f; }
done
if ! grep -q "^$user:" /etc/subuid || ! grep -q "^$user:" /etc/subgid; then
	start=$(free_start)
	[ -n "$start" ] || skip "no free range of 65536 ids below 2^20 in /etc/subuid and /etc/subgid"
	grep -q "^$user:" /etc/subuid || echo "$user:$start:65536" >>/etc/subuid
	grep -q "^$user:" /etc/subgid || echo "$user:$start:65536" >>/etc/subgid
fi
base=$(awk -F: -v u="$user" '$1 == u {print $2; exit}' /etc/subuid)
flock -u 9

# the engine's folder must be reachable by the remapped root (every folder
# above it o+x), which a checkout under a private folder (mktemp -d) is
# not: it lives in /var/tmp, named after the checkout, and goes at the end
dir=/var/tmp/orchestrator-userns-$(pwd | md5sum | cut -c1-8)
mkdir -p "$dir"
chmod 711 "$dir"
log=$BUILD/docker-userns.log
stop() { tests/env/docker.sh stop --dir "$dir" >/dev/null 2>&1 && rm -rf "$dir"; }
vars=$(tests/env/docker.sh start --dir "$dir" --images busybox --userns-remap "$user" 2>"$log") || {
	stop
	skip "the engine with --userns-remap did not start: $(tail -1 "$log")"
}
trap stop EXIT
eval "$vars"

echo "1..8"
info=$(/usr/bin/docker -H "$DOCKER_HOST" info --format '{{json .SecurityOptions}} {{.DockerRootDir}}' 2>&1)
case "$info" in *name=userns*"/$base.$base") r=0 ;; *) r=1 ;; esac
ok $r "the engine remaps to $user's range (first uid $base): $info"

ws=$(mktemp -d "$BUILD/userns-ws.XXXXXX")
trap 'rm -rf "$ws"; stop' EXIT
echo "from the host" >"$ws/given"
out=$("$BIN" sandbox run --backend docker --image "$ORCH_TEST_IMAGE_BUSYBOX" --workspace "$ws" -- \
	sh -c 'id -u; id -g; cat /proc/self/uid_map; cat /workspace/given; echo made > /workspace/f; mkdir /workspace/d; touch /workspace/d/g' 2>&1)
rc=$?
ok $rc "a command runs in the sandbox on the remapping engine" "$out"
[ "$(echo "$out" | sed -n 1p)" = 1000 ] && [ "$(echo "$out" | sed -n 2p)" = 1000 ]
ok $? "it is uid and gid 1000 inside" "$out"
echo "$out" | sed -n 3p | awk -v b="$base" '{exit !($1 == 0 && $2 == b && $3 == 65536)}'
ok $? "its uid map is the remapped range: 0 $base 65536" "$out"
echo "$out" | grep -qx "from the host"
ok $? "it reads what the host put in the workspace (given to the remapped uid)" "$out"
want=$((base + 1000))
owners=$(stat -c '%u:%g %n' "$ws/f" "$ws/d" "$ws/d/g" "$ws" 2>&1)
[ "$(stat -c %u:%g "$ws/f" "$ws/d" "$ws/d/g" "$ws" | sort -u)" = "$want:$want" ]
ok $? "what it wrote belongs to host uid $want (the range's 1000), not to host uid 1000" "$owners"
# the range comes from the engine's data folder: right also where this
# process cannot read the host's /etc/subuid (a spawner in a container)
rm -f "$ws/f2"
out=$(ORCH_DOCKER_USERNS_USER=no-such-user "$BIN" sandbox run --backend docker \
	--image "$ORCH_TEST_IMAGE_BUSYBOX" --workspace "$ws" -- sh -c 'echo again > /workspace/f2' 2>&1)
[ $? = 0 ] && [ "$(stat -c %u "$ws/f2" 2>/dev/null)" = "$want" ]
ok $? "the range is read from the engine's data folder, not only from /etc/subuid" "$out"
# a sandbox's end leaves no container behind
left=$(/usr/bin/docker -H "$DOCKER_HOST" ps -aq --filter label=orchestrator.sandbox 2>&1)
[ -z "$left" ]
ok $? "no sandbox container is left" "$left"
exit 0
