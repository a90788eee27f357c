#!/usr/bin/env bash
# What a hook call costs, taken apart: Lacquer instances that differ only in
# their plugin, all serving the same warmed cache hit over one connection
# (wrk -t1 -c1), interleaved over several rounds. The plugin is the probe in
# bench/probe-plugin, which makes only the host calls its config names, so:
#
#   empty       both hooks called, no host call: the fixed cost of a hook call
#   method      on-recv calls req.method()
#   header      on-recv calls req.header("authorization") (absent: none)
#   header_all  on-recv calls req.header_all("cookie") (absent: empty list)
#   set_header  on-deliver calls resp.set_header("x-cache", "HIT")
#   policy      the host calls cache-policy makes on a plain hit (all of the above)
#   bundle      the real default bundle, for comparison
#   none        plugins = [], for comparison
#
# Read from Lacquer's own metrics over the measured runs: mean µs per call of
# each hook (lacquer_plugin_duration_seconds), in-host time per hit
# (lacquer_request_duration_seconds{state="hit"}), and CPU µs per request
# (from /proc).
#
#   bench/hook-cost.sh
#   ROUNDS=5 DURATION=5 bench/hook-cost.sh
#   PIN=1 CONNECTIONS=8 bench/hook-cost.sh   # loaded: the server never idles
#
# At one connection the server idles between requests, so every call starts
# on caches the kernel and wrk have used meanwhile: the cold-call cost. With
# more connections (and PIN=1, servers on CPU 0 and wrk on CPU 1) the worker
# goes from request to request: the cost of a call on a busy server.
#
# Two builds side by side: LACQUER_B=binary and variants named with "-b"
# (VARIANTS="empty empty-b" runs the empty probe on both).
#
# Settings (environment): ROUNDS (3), DURATION seconds per run (5),
# CONNECTIONS (1) and THREADS (1) for wrk, PIN, VARIANTS
# (all of the above), PROBE (a built probe .wasm; default: build
# bench/probe-plugin with cargo for wasm32-wasip2 into target/bench-probe),
# LACQUER (binary), KEEP_WORK=1.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-2}
SIZE=1024
CONNECTIONS=${CONNECTIONS:-1}
THREADS=${THREADS:-1}
read -r -a VARIANTS <<<"${VARIANTS:-none empty method header header_all set_header policy bundle}"

need_tools
need_lacquer
if [[ -z ${PROBE:-} ]]; then
    PROBE=$REPO/target/bench-probe/wasm32-wasip2/release/lacquer_bench_probe.wasm
    log "building the probe plugin (cargo build --target wasm32-wasip2 --release)"
    cargo build --quiet --manifest-path "$BENCH_DIR/probe-plugin/Cargo.toml" --target wasm32-wasip2 --release \
        --target-dir "$REPO/target/bench-probe" >&2 || die "building bench/probe-plugin failed"
fi
[[ -f $PROBE ]] || die "no probe plugin at $PROBE"
PROBE=$(cd "$(dirname "$PROBE")" && pwd)/$(basename "$PROBE")
bench_init

probe() { # probe RECV_OPS DELIVER_OPS (TOML arrays)
    printf '[[plugins]]\nname = "probe"\npath = "%s"\nconfig = { recv = %s, deliver = %s }\n' "$PROBE" "$1" "$2"
}

echo "# Lacquer hook-call cost, $(date -u '+%Y-%m-%d %H:%M UTC')"
machine
echo "wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s${PIN:+ (pinned)}, ${SIZE}-byte cache hit, $ROUNDS rounds, variants interleaved (order rotated each round)"
echo

start_origin "$SIZE"
for v in "${VARIANTS[@]}"; do
    # A variant named with "-b" (e.g. empty-b) runs on the binary LACQUER_B.
    binary=$LACQUER
    if [[ $v == *-b ]]; then
        binary=${LACQUER_B:?$v needs LACQUER_B=binary}
    fi
    case ${v%-b} in
    none) BINARY=$binary start_lacquer "$v" none ;;
    bundle) BINARY=$binary start_lacquer "$v" default ;;
    empty) BINARY=$binary start_lacquer "$v" custom "$(probe '[]' '[]')" ;;
    method) BINARY=$binary start_lacquer "$v" custom "$(probe '["method"]' '[]')" ;;
    header) BINARY=$binary start_lacquer "$v" custom "$(probe '["header:authorization"]' '[]')" ;;
    header_all) BINARY=$binary start_lacquer "$v" custom "$(probe '["header_all:cookie"]' '[]')" ;;
    set_header) BINARY=$binary start_lacquer "$v" custom "$(probe '[]' '["set_header:x-cache"]')" ;;
    policy) BINARY=$binary start_lacquer "$v" custom "$(probe '["method", "header:authorization", "header_all:cookie"]' '["set_header:x-cache"]')" ;;
    *) die "unknown variant $v" ;;
    esac
done

url() { echo "http://127.0.0.1:${PORT[$1]}/$SIZE.txt"; }
scrape() { curl -sf --max-time 5 "http://127.0.0.1:${ADMIN[$1]}/metrics" >"$2" || die "$1: cannot read /metrics"; }

for v in "${VARIANTS[@]}"; do
    check_hit "$v" "$(url "$v")" "$SIZE"
    wrk_run "$(url "$v")" 1 1 "$WARMUP" >/dev/null
done

RESULTS=$WORK/results.tsv
printf 'round\tvariant\trps\tp50_us\terrors\tnon2xx\torigin\tcpu_us\n' >"$RESULTS"
mkdir -p "$WORK/metrics"
n=${#VARIANTS[@]}
for r in $(seq "$ROUNDS"); do
    for i in $(seq 0 $((n - 1))); do
        v=${VARIANTS[$(((i + r - 1) % n))]}
        scrape "$v" "$WORK/metrics/$v.$r.before"
        before=$(origin_requests)
        cpu0=$(cpu_ticks "$v")
        res=$(wrk_run "$(url "$v")" "$THREADS" "$CONNECTIONS" "$DURATION")
        cpu1=$(cpu_ticks "$v")
        after=$(origin_requests)
        scrape "$v" "$WORK/metrics/$v.$r.after"
        cpu=$(cpu_us_per_request $((cpu1 - cpu0)) "$(field requests "$res")")
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$v" "$(field rps "$res")" "$(field p50_us "$res")" \
            "$(field errors "$res")" "$(field non2xx "$res")" "$((after - before))" "$cpu" >>"$RESULTS"
        log "round $r/$ROUNDS  $(printf '%-11s' "$v") $(field rps "$res") req/s  p50 $(field p50_us "$res") us  cpu $cpu us/req"
    done
done

python3 - "$RESULTS" "$WORK/metrics" "$ROUNDS" "${VARIANTS[@]}" <<'EOF'
import csv, re, statistics, sys
from collections import defaultdict

results, mdir, rounds, variants = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
rows = list(csv.DictReader(open(results), delimiter="\t"))
line_re = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)')
label_re = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
def parse(path):
    out = {}
    for line in open(path):
        m = line_re.match(line)
        if m:
            out[(m.group(1), tuple(sorted(label_re.findall(m.group(2) or ""))))] = float(m.group(3))
    return out

print("| variant | on-recv µs/call | on-deliver µs/call | plugin µs per hit | in-host µs per hit | CPU µs/req (median) | p50 µs (median) | req/s (median) |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
bad = 0
for v in variants:
    tot = defaultdict(float)
    for r in range(1, rounds + 1):
        b, a = parse(f"{mdir}/{v}.{r}.before"), parse(f"{mdir}/{v}.{r}.after")
        for k, x in a.items():
            tot[k] += x - b.get(k, 0.0)
    def hook(h):
        s = sum(x for (n, l), x in tot.items() if n == "lacquer_plugin_duration_seconds_sum" and ("hook", h) in l)
        c = sum(x for (n, l), x in tot.items() if n == "lacquer_plugin_duration_seconds_count" and ("hook", h) in l)
        return (s, c)
    (rs, rc), (ds, dc) = hook("on-recv"), hook("on-deliver")
    hits = sum(x for (n, l), x in tot.items() if n == "lacquer_requests_total" and ("state", "hit") in l)
    key = lambda n: (n, (("state", "hit"),))
    hs, hc = tot.get(key("lacquer_request_duration_seconds_sum"), 0.0), tot.get(key("lacquer_request_duration_seconds_count"), 0.0)
    fmt = lambda s, c: f"{s / c * 1e6:.2f}" if c else "–"
    vr = [r for r in rows if r["variant"] == v]
    bad += sum(int(r["errors"]) + int(r["non2xx"]) + int(r["origin"]) for r in vr)
    med = lambda k: statistics.median(float(r[k]) for r in vr)
    print(f"| {v} | {fmt(rs, rc)} | {fmt(ds, dc)} | {fmt(rs + ds, hits)} | {fmt(hs, hc)} | "
          f"{med('cpu_us'):.1f} | {med('p50_us'):.0f} | {med('rps'):.0f} |")
if bad:
    print("\nWARNING: some runs had failed requests or reached the origin.")
EOF
