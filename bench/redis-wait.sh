#!/usr/bin/env bash
# What a plugin call that waits on the network costs: a one-node [cluster]
# on redis-server whose `rate-limit` (with a limit never reached) asks Redis
# for a token on every request, serving a warmed 1 KiB cache hit. Such a
# plugin is called on a fiber, which the wait suspends (/status says
# `calls: fiber`); the plugins that never wait are called synchronously.
# With LACQUER_B, a second build runs beside the first (its own key
# prefix in the same Redis), interleaved round by round.
#
#   bench/redis-wait.sh
#   LACQUER_B=old/lacquer ROUNDS=5 bench/redis-wait.sh
#
# Settings (environment): ROUNDS (3), DURATION seconds per run (5),
# CONNECTIONS (8), LACQUER (binary), LACQUER_B, KEEP_WORK=1.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
CONNECTIONS=${CONNECTIONS:-8}
SIZE=1024

need_tools
need redis-server redis-server
need_lacquer
bench_init

echo "# Lacquer: a plugin call waiting on Redis, $(date -u '+%Y-%m-%d %H:%M UTC')"
machine
echo "wrk -t1 -c$CONNECTIONS -d${DURATION}s, ${SIZE}-byte cache hit, rate-limit on a one-node cluster, $ROUNDS rounds"
echo

start_origin "$SIZE"
start_redis
SYSTEMS=(lacquer)
[[ -n ${LACQUER_B:-} ]] && SYSTEMS+=(lacquer-b)

# plugins_and_cluster NAME: the config's plugins and [cluster] for instance NAME.
plugins_and_cluster() {
    printf '[[plugins]]\nname = "rate-limit"\nbuiltin = "rate-limit"\n'
    printf 'config = { requests_per_second = 1000000, burst = 1000000 }\n\n'
    printf '[[plugins]]\nname = "cache-policy"\nbuiltin = "cache-policy"\n\n'
    printf '[cluster]\nnodes = ["http://@LISTEN@"]\nself = "http://@LISTEN@"\n'
    printf 'redis = "%s"\nsecret = "bench-secret-0123456789"\nkey_prefix = "%s"\n' "$REDIS_URL" "$1"
}

for v in "${SYSTEMS[@]}"; do
    binary=$LACQUER
    [[ $v == lacquer-b ]] && binary=$LACQUER_B
    BINARY=$binary start_lacquer "$v" custom "$(plugins_and_cluster "$v")"
done

url() { echo "http://127.0.0.1:${PORT[$1]}/$SIZE.txt"; }
for v in "${SYSTEMS[@]}"; do
    curl -s --max-time 5 "http://127.0.0.1:${ADMIN[$v]}/status" | grep -Eq '"calls": *"fiber"' ||
        log "$v: rate-limit is not said to be called on a fiber (a build before /status said it?)"
    check_hit "$v" "$(url "$v")" "$SIZE"
    wrk_run "$(url "$v")" 1 "$CONNECTIONS" 2 >/dev/null
done

printf '| round | system | req/s | p50 µs | CPU µs/req | errors |\n|---:|---|---:|---:|---:|---:|\n'
n=${#SYSTEMS[@]}
for r in $(seq "$ROUNDS"); do
    for i in $(seq 0 $((n - 1))); do
        v=${SYSTEMS[$(((i + r - 1) % n))]}
        cpu0=$(cpu_ticks "$v")
        res=$(wrk_run "$(url "$v")" 1 "$CONNECTIONS" "$DURATION")
        cpu1=$(cpu_ticks "$v")
        cpu=$(cpu_us_per_request $((cpu1 - cpu0)) "$(field requests "$res")")
        bad=$(($(field errors "$res") + $(field non2xx "$res")))
        printf '| %s | %s | %s | %s | %s | %s |\n' "$r" "$v" "$(field rps "$res")" \
            "$(field p50_us "$res")" "$cpu" "$bad"
    done
done
