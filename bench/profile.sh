#!/usr/bin/env bash
# Where Lacquer's time goes on a cache hit: a flat `perf` profile of one
# Lacquer process while wrk saturates it with hits on one warmed URL.
#
#   bench/profile.sh            # default bundle
#   PLUGINS=none bench/profile.sh
#
# Settings (environment): PLUGINS (default|none), SIZE body bytes (1024),
# DURATION seconds (10), THREADS (2), CONNS (32), LACQUER (binary), KEEP_WORK=1
# (keeps perf.data for `perf report -i`), CALLGRAPH=1 (record call stacks with
# DWARF unwinding and print the inclusive share of the request path's main
# frames: plugin chain, cache lookup, hyper; heavier, use DURATION=3..5). Needs `perf` (Debian: linux-perf) and
# permission to profile (root, or kernel.perf_event_paranoid <= 1).
#
# JIT-compiled plugin code has no symbols: it shows up as unknown addresses in
# an anonymous mapping, so the "[unknown]"/anon rows are time inside wasm.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PLUGINS=${PLUGINS:-default}
SIZE=${SIZE:-1024}
DURATION=${DURATION:-10}
THREADS=${THREADS:-2}
CONNS=${CONNS:-32}

need_tools
need perf linux-perf
need_lacquer
bench_init

start_origin "$SIZE"
start_lacquer lacquer "$PLUGINS"
url="http://127.0.0.1:${PORT[lacquer]}/$SIZE.txt"
check_hit lacquer "$url" "$SIZE"
wrk_run "$url" "$THREADS" "$CONNS" 2 >/dev/null

callgraph=()
[[ -n ${CALLGRAPH:-} ]] && callgraph=(--call-graph dwarf,16384)
perf record -q -F 999 "${callgraph[@]}" -o "$WORK/perf.data" -p "${PIDOF[lacquer]}" -- sleep "$DURATION" 2>"$WORK/perf.log" &
perf_pid=$!
STARTED+=("$perf_pid")
res=$(wrk_run "$url" "$THREADS" "$CONNS" "$DURATION")
wait "$perf_pid" || true

echo "# Lacquer ($PLUGINS plugins) under wrk -t$THREADS -c$CONNS -d${DURATION}s, ${SIZE}-byte hit"
echo "wrk: $res"
echo
echo "## By shared object"
perf report -i "$WORK/perf.data" --stdio --no-children -g none --sort dso 2>/dev/null | grep -v '^#' | grep -v '^$' | head -15
echo
echo "## Top symbols"
perf report -i "$WORK/perf.data" --stdio --no-children -g none --sort dso,sym --percent-limit 0.7 2>/dev/null |
    grep -v '^#' | grep -v '^$' | head -60

if [[ -n ${CALLGRAPH:-} ]]; then
    echo
    echo "## Inclusive share of the process's samples (children included; DWARF unwinding is partial, so these are lower bounds)"
    perf report -i "$WORK/perf.data" --stdio --children --sort sym --percent-limit 0.1 -g none 2>/dev/null |
        python3 -c '
import re, sys
labels = [
    ("plugin hook calls on wasm fibers (guest code + host calls)", r"wasmtime_fiber_start"),
    ("component call entry (Func::call_raw)", r"component::func::Func::call_raw"),
    ("host functions called by plugins", r"HostFn::entrypoint"),
    ("LoadedPlugin::begin (take instance, move request in)", r"LoadedPlugin::begin"),
    ("LoadedPlugin::end (move request out, pool, metrics)", r"LoadedPlugin::end"),
    ("cache lookup", r"cache::Cache::lookup"),
    ("HTTP/1 request parsing (hyper)", r"Http1Transaction>::parse"),
    ("response write: writev incl. kernel TCP", r"__GI___writev|\b__writev"),
    ("memmove (mostly moving large futures)", r"__memmove"),
]
best = {name: 0.0 for name, _ in labels}
for line in sys.stdin:
    m = re.match(r"\s*([0-9.]+)%\s+[0-9.]+%\s+(.*)", line)
    if not m:
        continue
    for name, rx in labels:
        if re.search(rx, m.group(2)):
            best[name] = max(best[name], float(m.group(1)))
for name, _ in labels:
    print(f"  {best[name]:5.1f}%  {name}")
'
fi
