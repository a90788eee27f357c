#!/usr/bin/env bash
# Cache-hit throughput and latency: Varnish, nginx (proxy_cache), Lacquer with
# its default plugin bundle and Lacquer with no plugins, side by side in front
# of one nginx origin, interleaved over several rounds.
#
#   bench/run.sh                      # 3 rounds, wrk -t2 -c32 -d10s, 1 KB and 100 KB bodies
#   ROUNDS=5 DURATION=10 bench/run.sh
#
# Settings (environment): ROUNDS (3), DURATION seconds per run (10), THREADS (2),
# CONNS (32), SIZES body sizes in bytes ("1024 102400"), WARMUP seconds (2),
# SYSTEMS (varnish nginx lacquer lacquer-none; also lacquer-b: the default
# bundle on the binary LACQUER_B, to set two builds side by side), LACQUER
# (binary, default target/release/lacquer, built if missing), NGINX_WORKERS (auto),
# RAW=FILE also writes the per-run results there (tab-separated), KEEP_WORK=1
# keeps the temporary directory (configs, logs, raw results), PIN=1 runs
# every server on CPU 0 and wrk on CPU 1 (taskset; with THREADS=1 and
# NGINX_WORKERS=1 for a like-for-like single core).
#
# Then run bench/plugin-cost.sh for the per-request cost of the plugin chain.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
THREADS=${THREADS:-2}
CONNS=${CONNS:-32}
WARMUP=${WARMUP:-2}
read -r -a SIZES <<<"${SIZES:-1024 102400}"
read -r -a SYSTEMS <<<"${SYSTEMS:-varnish nginx lacquer lacquer-none}"

need_tools
need_lacquer
bench_init

echo "# Lacquer cache-hit benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')"
machine
echo "wrk -t$THREADS -c$CONNS -d${DURATION}s, $ROUNDS rounds, systems interleaved (order rotated each round)"
echo

start_origin "${SIZES[@]}"
for s in "${SYSTEMS[@]}"; do
    case $s in
    varnish) start_varnish ;;
    nginx) start_nginx_cache ;;
    lacquer) start_lacquer lacquer default ;;
    lacquer-none) start_lacquer lacquer-none none ;;
    lacquer-b) BINARY=${LACQUER_B:?lacquer-b needs LACQUER_B=binary} start_lacquer lacquer-b default ;;
    *) die "unknown system $s (known: varnish nginx lacquer lacquer-none lacquer-b)" ;;
    esac
done

url() { echo "http://127.0.0.1:${PORT[$1]}/$2.txt"; }

# Fill every cache and check that it answers with the whole body.
for s in "${SYSTEMS[@]}"; do
    for size in "${SIZES[@]}"; do
        check_hit "$s" "$(url "$s" "$size")" "$size"
    done
done
# Warm up (connections, thread pools, plugin instance pools), not recorded.
for s in "${SYSTEMS[@]}"; do
    for size in "${SIZES[@]}"; do
        wrk_run "$(url "$s" "$size")" "$THREADS" "$CONNS" "$WARMUP" >/dev/null
    done
done

RESULTS=$WORK/results.tsv
printf 'round\tsize\tsystem\trps\tp50_us\tp99_us\tmean_us\terrors\tnon2xx\torigin\tcpu_us\n' >"$RESULTS"
n=${#SYSTEMS[@]}
for r in $(seq "$ROUNDS"); do
    for size in "${SIZES[@]}"; do
        for i in $(seq 0 $((n - 1))); do
            s=${SYSTEMS[$(((i + r - 1) % n))]}
            before=$(origin_requests)
            cpu0=$(cpu_ticks "$s")
            res=$(wrk_run "$(url "$s" "$size")" "$THREADS" "$CONNS" "$DURATION")
            cpu1=$(cpu_ticks "$s")
            after=$(origin_requests)
            cpu=$(cpu_us_per_request $((cpu1 - cpu0)) "$(field requests "$res")")
            printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$size" "$s" \
                "$(field rps "$res")" "$(field p50_us "$res")" "$(field p99_us "$res")" \
                "$(field mean_us "$res")" "$(field errors "$res")" "$(field non2xx "$res")" \
                "$((after - before))" "$cpu" >>"$RESULTS"
            log "round $r/$ROUNDS  ${size} B  $(printf '%-13s' "$s") $(field rps "$res") req/s  p50 $(field p50_us "$res") us  p99 $(field p99_us "$res") us  cpu $cpu us/req"
        done
    done
done
[[ -n ${RAW:-} ]] && cp "$RESULTS" "$RAW"

python3 - "$RESULTS" <<'EOF'
import csv, statistics, sys
from collections import defaultdict

rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
by = defaultdict(list)
for r in rows:
    by[(int(r["size"]), r["system"])].append(r)
sizes = sorted({k[0] for k in by})
systems = list(dict.fromkeys(r["system"] for r in rows))
label = {
    "varnish": "Varnish",
    "nginx": "nginx proxy_cache",
    "lacquer": "Lacquer (default bundle)",
    "lacquer-none": "Lacquer (plugins = [])",
    "lacquer-b": "Lacquer B (LACQUER_B, default bundle)",
}
med = lambda rs, k: statistics.median(float(r[k]) for r in rs)

def human(n):
    return f"{n // 1024} KB" if n % 1024 == 0 else f"{n} B"

errors_total = origin_total = 0
for size in sizes:
    print(f"\n## {human(size)} body, cache hit\n")
    print("| system | req/s (median) | p50 µs | p99 µs | CPU µs/req | req/s per round | origin requests | errors |")
    print("|---|---:|---:|---:|---:|---|---:|---:|")
    m = {}
    for s in systems:
        rs = by[(size, s)]
        m[s] = {k: med(rs, k) for k in ("rps", "p50_us", "p99_us", "cpu_us")}
        origin = sum(int(r["origin"]) for r in rs)
        errors = sum(int(r["errors"]) + int(r["non2xx"]) for r in rs)
        errors_total += errors
        origin_total += origin
        per = " / ".join(f"{float(r['rps']):.0f}" for r in sorted(rs, key=lambda r: int(r["round"])))
        print(f"| {label.get(s, s)} | {m[s]['rps']:.0f} | {m[s]['p50_us']:.0f} | {m[s]['p99_us']:.0f} | {m[s]['cpu_us']:.1f} | {per} | {origin} | {errors} |")
    pairs = [(a, b) for a in ("lacquer", "lacquer-none") for b in ("varnish", "nginx", "lacquer-none", "lacquer-b") if a in m and b in m and a != b]
    if pairs:
        print("\n| ratio (medians) | req/s | p50 | p99 | CPU/req |")
        print("|---|---:|---:|---:|---:|")
        for a, b in pairs:
            r = lambda k: m[a][k] / m[b][k] if m[b][k] else float("nan")
            print(f"| {label[a]} / {label[b]} | {r('rps'):.2f} | {r('p50_us'):.2f} | {r('p99_us'):.2f} | {r('cpu_us'):.2f} |")
if errors_total or origin_total:
    print(f"\nWARNING: {errors_total} failed requests (socket errors, timeouts or non-2xx) and "
          f"{origin_total} origin requests during the measured runs (see the per-system columns).")
EOF
echo
binary_size
