#!/usr/bin/env bash
# The cost of the plugin chain on a cache hit: Lacquer with its default bundle
# (cache-policy, error-pages) against Lacquer with `plugins = []`, same origin,
# same warmed URL, interleaved over several rounds. On a hit the default bundle
# runs two hook calls: cache-policy's on-recv and on-deliver (error-pages only
# implements on-fetch-error).
#
# Two load shapes, each measured for both configurations in every round:
#   c1:  wrk -t1 -c1   one connection: latency is the per-request cost
#   c32: wrk -t2 -c32  saturation: what the chain costs in throughput and CPU
#
# For each shape, the same number seen several ways:
#  (a) from wrk: difference of the median p50 latencies, and the median of the
#      per-round paired differences (default − none). The mean is shown too,
#      but one scheduler stall of a few ms moves it by tens of µs on a shared
#      machine.
#  (b) CPU time Lacquer used per request (utime + stime from /proc over the
#      run): less sensitive to a busy machine than latency.
#  (c) Lacquer's lacquer_plugin_duration_seconds{plugin,hook} histogram
#      (sum/count over the measured runs): mean µs per hook call, and the sum
#      over hooks per hit request.
#  (d) Lacquer's lacquer_request_duration_seconds{state="hit"} (request in to
#      response headers out, inside the host): mean, default vs none.
#
#   bench/plugin-cost.sh
#   ROUNDS=9 bench/plugin-cost.sh
#
# Settings (environment): ROUNDS (5), DURATION seconds per run (10), SIZE body
# bytes (1024), SHAPES ("c1 c32"), WARMUP seconds (2), LACQUER (binary),
# RAW=FILE (also write the per-run results there, tab-separated), KEEP_WORK=1.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-10}
SIZE=${SIZE:-1024}
WARMUP=${WARMUP:-2}
read -r -a SHAPES <<<"${SHAPES:-c1 c32}"
SYSTEMS=(lacquer lacquer-none)

# shape_args SHAPE: wrk threads and connections.
shape_args() {
    case $1 in
    c1) echo "1 1" ;;
    c32) echo "2 32" ;;
    *) die "unknown shape $1 (known: c1 c32)" ;;
    esac
}
for shape in "${SHAPES[@]}"; do shape_args "$shape" >/dev/null; done

need_tools
need_lacquer
bench_init

echo "# Lacquer plugin-chain cost on a cache hit, $(date -u '+%Y-%m-%d %H:%M UTC')"
machine
echo "${SIZE}-byte body, ${DURATION}s per run, $ROUNDS rounds, shapes: ${SHAPES[*]} (c1 = wrk -t1 -c1, c32 = wrk -t2 -c32);"
echo "default bundle and plugins = [] interleaved, order alternating each round"
echo

start_origin "$SIZE"
start_lacquer lacquer default
start_lacquer lacquer-none none

url() { echo "http://127.0.0.1:${PORT[$1]}/$SIZE.txt"; }
scrape() { curl -sf --max-time 5 "http://127.0.0.1:${ADMIN[$1]}/metrics" >"$2" || die "$1: cannot read /metrics"; }

for s in "${SYSTEMS[@]}"; do
    check_hit "$s" "$(url "$s")" "$SIZE"
    grep -qi '^x-cache: *HIT' "$WORK/$s.headers" || [[ $s == lacquer-none ]] ||
        die "$s: second request was not a HIT: $(cat "$WORK/$s.headers")"
    for shape in "${SHAPES[@]}"; do
        read -r t c <<<"$(shape_args "$shape")"
        wrk_run "$(url "$s")" "$t" "$c" "$WARMUP" >/dev/null
    done
done

RESULTS=$WORK/results.tsv
printf 'shape\tround\tsystem\trps\tmean_us\tp50_us\tp90_us\tp99_us\terrors\tnon2xx\torigin\tcpu_us\n' >"$RESULTS"
mkdir -p "$WORK/metrics"
for r in $(seq "$ROUNDS"); do
    for shape in "${SHAPES[@]}"; do
        read -r t c <<<"$(shape_args "$shape")"
        for i in 0 1; do
            s=${SYSTEMS[$(((i + r - 1) % 2))]}
            scrape "$s" "$WORK/metrics/$s.$shape.$r.before"
            before=$(origin_requests)
            cpu0=$(cpu_ticks "$s")
            res=$(wrk_run "$(url "$s")" "$t" "$c" "$DURATION")
            cpu1=$(cpu_ticks "$s")
            after=$(origin_requests)
            scrape "$s" "$WORK/metrics/$s.$shape.$r.after"
            cpu=$(cpu_us_per_request $((cpu1 - cpu0)) "$(field requests "$res")")
            printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$shape" "$r" "$s" \
                "$(field rps "$res")" "$(field mean_us "$res")" "$(field p50_us "$res")" \
                "$(field p90_us "$res")" "$(field p99_us "$res")" "$(field errors "$res")" \
                "$(field non2xx "$res")" "$((after - before))" "$cpu" >>"$RESULTS"
            log "round $r/$ROUNDS  $shape  $(printf '%-13s' "$s") $(field rps "$res") req/s  p50 $(field p50_us "$res") us  cpu $cpu us/req"
        done
    done
done
[[ -n ${RAW:-} ]] && cp "$RESULTS" "$RAW"

python3 - "$RESULTS" "$WORK/metrics" "$ROUNDS" <<'EOF'
import csv, math, re, statistics, sys
from collections import defaultdict

results, mdir, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
rows = list(csv.DictReader(open(results), delimiter="\t"))
shapes = list(dict.fromkeys(r["shape"] for r in rows))
title = {"c1": "c1 (wrk -t1 -c1, one connection)", "c32": "c32 (wrk -t2 -c32, saturation)"}

# Prometheus text: name{labels} value
line_re = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)')
label_re = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
def parse(path):
    out = {}
    for line in open(path):
        m = line_re.match(line)
        if m:
            out[(m.group(1), tuple(sorted(label_re.findall(m.group(2) or ""))))] = float(m.group(3))
    return out

def deltas(system, shape):
    tot = defaultdict(float)
    for r in range(1, rounds + 1):
        b = parse(f"{mdir}/{system}.{shape}.{r}.before")
        a = parse(f"{mdir}/{system}.{shape}.{r}.after")
        for k, v in a.items():
            tot[k] += v - b.get(k, 0.0)
    return tot

def mean_req(t):
    key = lambda n: (n, (("state", "hit"),))
    c = t.get(key("lacquer_request_duration_seconds_count"), 0.0)
    return t.get(key("lacquer_request_duration_seconds_sum"), 0.0) / c * 1e6 if c else float("nan")

summary = []
for shape in shapes:
    by = defaultdict(dict)
    for r in rows:
        if r["shape"] == shape:
            by[r["system"]][int(r["round"])] = r
    D, N = by["lacquer"], by["lacquer-none"]
    med = lambda rs, k: statistics.median(float(r[k]) for r in rs.values())
    paired = lambda k: statistics.median(float(D[r][k]) - float(N[r][k]) for r in D if r in N)
    errors = sum(int(r["errors"]) + int(r["non2xx"]) for s in (D, N) for r in s.values())
    origin = sum(int(r["origin"]) for s in (D, N) for r in s.values())

    print(f"## {title.get(shape, shape)}\n")
    print("| median of rounds | default bundle | plugins = [] | difference | paired difference |")
    print("|---|---:|---:|---:|---:|")
    for k, name in (("p50_us", "(a) p50 latency, µs"), ("p90_us", "p90 latency, µs"),
                    ("p99_us", "p99 latency, µs"), ("mean_us", "mean latency, µs"),
                    ("cpu_us", "(b) Lacquer CPU per request, µs")):
        d, n = med(D, k), med(N, k)
        print(f"| {name} | {d:.1f} | {n:.1f} | {d - n:+.1f} | {paired(k):+.1f} |")
    d, n = med(D, "rps"), med(N, "rps")
    print(f"| req/s | {d:.0f} | {n:.0f} | {d / n - 1:+.1%} | |")
    print("\nPer round, p50 µs default/none: " + ", ".join(
        f"{D[r]['p50_us']}/{N[r]['p50_us']}" for r in sorted(D) if r in N))
    print("Per round, CPU µs/request default/none: " + ", ".join(
        f"{D[r]['cpu_us']}/{N[r]['cpu_us']}" for r in sorted(D) if r in N))
    if errors or origin:
        print(f"\nWARNING: {errors} failed requests (socket errors, timeouts or non-2xx) and "
              f"{origin} origin requests during the measured runs.")

    dd, dn = deltas("lacquer", shape), deltas("lacquer-none", shape)
    print("\n(c) lacquer_plugin_duration_seconds, default bundle, over the measured runs:\n")
    print("| plugin | hook | calls | mean µs per call | ≤1 µs | ≤4 µs | ≤16 µs | ≤64 µs |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    total_s = 0.0
    for (name, labels), count in sorted(dd.items()):
        if name != "lacquer_plugin_duration_seconds_count" or count <= 0:
            continue
        l = dict(labels)
        s = dd[("lacquer_plugin_duration_seconds_sum", labels)]
        total_s += s
        def le(bound):
            for (n2, l2), v in dd.items():
                d2 = dict(l2)
                if n2 == "lacquer_plugin_duration_seconds_bucket" and d2.get("plugin") == l["plugin"] \
                        and d2.get("hook") == l["hook"] and math.isclose(float(d2["le"]), bound, rel_tol=1e-6):
                    return f"{v / count:.0%}"
            return "?"
        print(f"| {l['plugin']} | {l['hook']} | {count:.0f} | {s / count * 1e6:.2f} | "
              f"{le(1e-6)} | {le(4e-6)} | {le(16e-6)} | {le(64e-6)} |")
    hits = sum(v for (n, l), v in dd.items() if n == "lacquer_requests_total" and ("state", "hit") in l)
    per_hit = total_s / hits * 1e6 if hits else float("nan")
    print(f"\nHit requests: {hits:.0f}; plugin time per hit request (sum over hooks): {per_hit:.2f} µs")
    md, mn = mean_req(dd), mean_req(dn)
    print(f"\n(d) lacquer_request_duration_seconds{{state=\"hit\"}} mean (inside the host, to response headers): "
          f"default {md:.2f} µs, none {mn:.2f} µs, difference {md - mn:+.2f} µs\n")
    summary.append((shape, med(D, "p50_us") - med(N, "p50_us"), paired("cpu_us"), per_hit, md - mn))

print("## Summary: plugin chain cost per cache hit, µs\n")
print("| shape | (a) Δ p50 latency | (b) Δ CPU per request | (c) plugin time per hit | (d) Δ in-host time |")
print("|---|---:|---:|---:|---:|")
for shape, a, b, c, d in summary:
    print(f"| {shape} | {a:+.1f} | {b:+.1f} | {c:.2f} | {d:+.2f} |")
EOF
