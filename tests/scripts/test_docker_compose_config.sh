#!/usr/bin/env bash
# compose/docker-compose.yml is valid for docker-compose (1.29, Debian's),
# with compose/.env.example as its .env: the services, the images as
# parameters defaulting to the official ones, health checks through
# /healthz, migrations before the roles, and a clear refusal without a
# database password. No daemon is needed. Prints TAP.
cd "$(dirname "$0")/../.."
n=0
fails=0
ok() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fails=$((fails + 1)); fi; }
if ! command -v docker-compose >/dev/null; then
	echo "1..1"
	echo "ok 1 - docker-compose config # SKIP"
	echo "skipped: docker-compose is not installed (make test installs it with the private Docker engine)"
	# the image's build stage copies every folder the Makefile compiles or embeds
missing=""
for d in $(sed -n 's/^PARTS := //p' "$root/Makefile") cli migrations; do
	grep -q "^COPY $d $d\$" "$root/compose/Dockerfile" || missing="$missing $d"
done
[ -z "$missing" ]
ok $? "compose/Dockerfile copies every part the Makefile builds${missing:+ (missing, add COPY lines:$missing)}"
exit 0
fi
echo "1..12"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
root=$(pwd)
cp -r compose "$dir/compose"
cp compose/.env.example "$dir/compose/.env"
cd "$dir/compose"
out=$(docker-compose config 2>&1)
ok $? "docker-compose config accepts the file with .env.example"
services=$(docker-compose --profile telegram config --services 2>/dev/null | sort | tr '\n' ' ')
[ "$services" = "bot engine migrate postgres redis spawner web " ]
ok $? "services: $services"
echo "$out" | grep -q "image: postgres:15" && echo "$out" | grep -q "image: redis:7"
ok $? "official images by default"
out2=$(POSTGRES_IMAGE=local/pg:1 REDIS_IMAGE=local/redis:1 ORCH_BASE_IMAGE=local/base:1 docker-compose config 2>&1)
echo "$out2" | grep -q "image: local/pg:1" && echo "$out2" | grep -q "image: local/redis:1" &&
	echo "$out2" | grep -q "ORCH_BASE_IMAGE: local/base:1"
ok $? "POSTGRES_IMAGE, REDIS_IMAGE and ORCH_BASE_IMAGE replace them"
echo "$out" | grep -A2 -- "- CMD$" | tr -d " \n" | grep -q -- "-CMD-orchestrator-healthcheck"
ok $? "the roles' health checks ask /healthz (orchestrator healthcheck)"
echo "$out" | grep -A3 "service_completed_successfully" | grep -q . && echo "$out" | grep -q "condition: service_healthy"
ok $? "the roles wait for the migrations and for healthy PostgreSQL and Redis"
echo "$out" | grep -q "ORCH_HTTP_ADDR: 0.0.0.0:9464"
ok $? "every role listens on ORCH_HTTP_ADDR"
n_data=$(docker-compose --profile telegram config 2>/dev/null | grep -c -- "- orchdata:/var/lib/orchestrator:rw")
[ "$n_data" = 5 ]
ok $? "migrate, engine, bot, spawner and web share one data folder (the volume orchdata; $n_data mounts)"
sed -i '/^POSTGRES_PASSWORD=/d' .env
err=$(docker-compose config 2>&1)
[ $? != 0 ] && echo "$err" | grep -q "set POSTGRES_PASSWORD in .env"
ok $? "no POSTGRES_PASSWORD: refused, saying what to set"
# every variable the file reads is listed in .env.example
missing=""
for v in $(grep -o '\${[A-Z_]*' docker-compose.yml | cut -c3- | sort -u); do
	grep -q "$v=" .env.example 2>/dev/null || grep -q "$v=" ../compose/.env.example 2>/dev/null || missing="$missing $v"
done
[ -z "$missing" ]
ok $? "every variable of docker-compose.yml is in .env.example${missing:+ (missing:$missing)}"
# and every variable of the README's configuration tables
missing=""
for v in $(grep -oE '^\| `[A-Z][A-Z0-9_]*`(, `[A-Z][A-Z0-9_]*`)*' "$root/README.md" | grep -oE '[A-Z][A-Z0-9_]{2,}' | sort -u); do
	grep -qw "$v" "$root/compose/.env.example" || missing="$missing $v"
done
[ -z "$missing" ]
ok $? "every variable of the README's tables is in .env.example${missing:+ (missing, add them:$missing)}"
# the image's build stage copies every folder the Makefile compiles or embeds
missing=""
for d in $(sed -n 's/^PARTS := //p' "$root/Makefile") cli migrations; do
	grep -q "^COPY $d $d\$" "$root/compose/Dockerfile" || missing="$missing $d"
done
[ -z "$missing" ]
ok $? "compose/Dockerfile copies every part the Makefile builds${missing:+ (missing, add COPY lines:$missing)}"
exit 0
