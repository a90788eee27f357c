#!/usr/bin/env bash
# Runaway isolation: what 4 requests stuck in a looping plugin cost everyone
# else. Lacquer runs the `faulty` test guest in loop mode on /boom (each call
# spins until its CPU `timeout`); while 4 such calls run, wrk sends cache hits
# on another URL over 20 connections. Printed per round: the hits' p50/p99
# and req/s, beside a round without the loops.
#
#   bench/runaway.sh
#   ROUNDS=5 TIMEOUT=2s bench/runaway.sh
#
# Settings (environment): ROUNDS (3), TIMEOUT the looping plugin's CPU budget
# per call (1s), LACQUER (binary), KEEP_WORK=1.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ROUNDS=${ROUNDS:-3}
TIMEOUT=${TIMEOUT:-1s}
SIZE=1024

need_tools
need_lacquer
log "building the faulty test guest (cargo build --target wasm32-wasip2 --release)"
cargo build --quiet --manifest-path "$REPO/tests/guests/Cargo.toml" -p faulty --target wasm32-wasip2 --release \
    --target-dir "$REPO/target/bench-guests" >&2 || die "building tests/guests/faulty failed"
FAULTY=$REPO/target/bench-guests/wasm32-wasip2/release/faulty.wasm
[[ -f $FAULTY ]] || die "no faulty guest at $FAULTY"
bench_init

echo "# Lacquer runaway isolation, $(date -u '+%Y-%m-%d %H:%M UTC')"
machine
echo "4 requests looping in a plugin (CPU timeout $TIMEOUT) while wrk -t2 -c20 -d1s sends ${SIZE}-byte hits"
echo

start_origin "$SIZE"
start_lacquer lacquer custom "$(printf '[[plugins]]\nname = "looper"\npath = "%s"\non_error = "skip"\ntimeout = "%s"\nwall_timeout = "60s"\nconfig = { mode = "loop" }\n' "$FAULTY" "$TIMEOUT")"
url="http://127.0.0.1:${PORT[lacquer]}/$SIZE.txt"
check_hit lacquer "$url" "$SIZE"
wrk_run "$url" 2 20 1 >/dev/null

printf '| round | loops | p50 µs | p99 µs | req/s | errors |\n|---:|---|---:|---:|---:|---:|\n'
for r in $(seq "$ROUNDS"); do
    for loops in 0 4; do
        pids=()
        for i in $(seq 1 "$loops"); do
            curl -s -o /dev/null --max-time 60 "http://127.0.0.1:${PORT[lacquer]}/boom/$r-$i" &
            pids+=($!)
        done
        # Let the loops get into the plugin (they then run for TIMEOUT of CPU each).
        ((loops > 0)) && sleep 0.2
        res=$(wrk_run "$url" 2 20 1)
        for p in "${pids[@]}"; do wait "$p" || true; done
        printf '| %s | %s | %s | %s | %s | %s |\n' "$r" "$loops" "$(field p50_us "$res")" "$(field p99_us "$res")" \
            "$(field rps "$res")" "$(field errors "$res")"
    done
done
