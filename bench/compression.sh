#!/usr/bin/env bash
# What `[cache] compress` costs and saves on cache hits: CPU per request and
# bytes sent for three cases, interleaved over several rounds in front of one
# nginx origin serving text:
#
#   gzip-stored      a gzip client, object stored gzip-compressed (sent as stored)
#   identity-plain   an identity client, object stored as sent (compress off)
#   identity-gunzip  an identity client, object stored gzip-compressed
#                    (decompressed on every hit)
#
#   bench/compression.sh              # 3 rounds, wrk -t2 -c32 -d10s, 4 KB and 100 KB bodies
#   ROUNDS=5 bench/compression.sh
#
# Settings (environment): ROUNDS (3), DURATION seconds per run (10), THREADS
# (2), CONNS (32), SIZES body sizes in bytes ("4096 102400"), WARMUP seconds
# (2), LACQUER (binary, default target/release/lacquer, built if missing),
# RAW=FILE also writes the per-run results there (tab-separated), KEEP_WORK=1
# keeps the temporary directory, PIN=1 runs servers on CPU 0 and wrk on CPU 1.
#
# Both Lacquers run with `plugins = []`, so the numbers are the cache's own.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
THREADS=${THREADS:-2}
CONNS=${CONNS:-32}
WARMUP=${WARMUP:-2}
read -r -a SIZES <<<"${SIZES:-4096 102400}"
CASES=(gzip-stored identity-plain identity-gunzip)

need python3 python3
need curl curl
need wrk wrk
need nginx nginx
PATH=$PATH:/usr/sbin
need_lacquer
bench_init

echo "# Lacquer compression benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "$(nproc) cores, $(uname -sr), $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')"
echo "wrk -t$THREADS -c$CONNS -d${DURATION}s, $ROUNDS rounds, cases interleaved (order rotated each round)"
echo

start_origin "${SIZES[@]}"
# Text that compresses like real text (about 4:1 to 6:1), not a run of one byte.
for size in "${SIZES[@]}"; do
    python3 - "$size" >"$WORK/origin/www/$size.txt" <<'PY'
import random, sys
random.seed(7)
words = "the cache stores a response compressed once and sends it to every client that accepts gzip while others get it decompressed".split()
out, n = [], 0
size = int(sys.argv[1])
while n < size:
    line = f"{n:08d} " + " ".join(random.choice(words) for _ in range(12)) + "\n"
    out.append(line)
    n += len(line)
sys.stdout.write("".join(out)[:size])
PY
done
start_lacquer lacquer-gz none "[cache]
compress = { enabled = true }"
start_lacquer lacquer-id none

# case -> the Lacquer it measures and whether the client asks for gzip.
system() { [[ $1 == identity-plain ]] && echo lacquer-id || echo lacquer-gz; }
gzip_client() { [[ $1 == gzip-stored ]]; }
url() { echo "http://127.0.0.1:${PORT[$(system "$1")]}/$2.txt"; }

# wrk_case CASE SIZE SECONDS: one bounded wrk run, its RESULT fields.
wrk_case() {
    local c=$1 size=$2 d=$3 out hdr=()
    gzip_client "$c" && hdr=(-H "Accept-Encoding: gzip")
    local pin=()
    [[ -n ${PIN:-} ]] && pin=(taskset -c 1)
    out=$(timeout $((d + 30)) "${pin[@]}" wrk -t"$THREADS" -c"$CONNS" -d"${d}s" --timeout 5s "${hdr[@]}" \
        -s "$BENCH_DIR/report.lua" "$(url "$c" "$size")" 2>&1) || die "wrk failed ($c $size): $out"
    grep '^RESULT ' <<<"$out" | sed 's/^RESULT //' || die "wrk printed no result ($c $size): $out"
}

# Fill both caches; check what each case gets on a hit, and note its size.
declare -A SENT=()
for size in "${SIZES[@]}"; do
    for c in "${CASES[@]}"; do
        hdr=()
        gzip_client "$c" && hdr=(-H "Accept-Encoding: gzip")
        curl -s -o /dev/null --max-time 5 "${hdr[@]}" "$(url "$c" "$size")" || die "$c: fill failed"
        out=$(curl -s -o "$WORK/$c.$size.body" -D "$WORK/$c.$size.headers" --max-time 5 "${hdr[@]}" \
            -w '%{http_code} %{size_download}' "$(url "$c" "$size")") || die "$c: hit failed"
        read -r code bytes <<<"$out"
        [[ $code == 200 ]] || die "$c $size: status $code"
        enc=$({ grep -i '^content-encoding:' "$WORK/$c.$size.headers" || true; } | tr -d '\r' | awk '{print $2}')
        if gzip_client "$c"; then
            [[ $enc == gzip ]] || die "$c $size: not gzip (content-encoding '$enc')"
            cmp -s <(gzip -dc "$WORK/$c.$size.body") "$WORK/origin/www/$size.txt" || die "$c $size: gunzip differs"
        else
            [[ -z $enc && $bytes == "$size" ]] || die "$c $size: '$enc' $bytes bytes, expected identity $size"
            cmp -s "$WORK/$c.$size.body" "$WORK/origin/www/$size.txt" || die "$c $size: body differs"
        fi
        SENT[$c.$size]=$bytes
    done
done
for size in "${SIZES[@]}"; do
    for c in "${CASES[@]}"; do
        wrk_case "$c" "$size" "$WARMUP" >/dev/null
    done
done

RESULTS=$WORK/results.tsv
printf 'round\tsize\tcase\tsent\trps\tp50_us\tp99_us\terrors\tnon2xx\torigin\tcpu_us\n' >"$RESULTS"
n=${#CASES[@]}
for r in $(seq "$ROUNDS"); do
    for size in "${SIZES[@]}"; do
        for i in $(seq 0 $((n - 1))); do
            c=${CASES[$(((i + r - 1) % n))]}
            s=$(system "$c")
            before=$(origin_requests)
            cpu0=$(cpu_ticks "$s")
            res=$(wrk_case "$c" "$size" "$DURATION")
            cpu1=$(cpu_ticks "$s")
            after=$(origin_requests)
            cpu=$(cpu_us_per_request $((cpu1 - cpu0)) "$(field requests "$res")")
            printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$size" "$c" "${SENT[$c.$size]}" \
                "$(field rps "$res")" "$(field p50_us "$res")" "$(field p99_us "$res")" \
                "$(field errors "$res")" "$(field non2xx "$res")" "$((after - before))" "$cpu" >>"$RESULTS"
            log "round $r/$ROUNDS  ${size} B  $(printf '%-16s' "$c") $(field rps "$res") req/s  p50 $(field p50_us "$res") us  cpu $cpu us/req"
        done
    done
done
[[ -n ${RAW:-} ]] && cp "$RESULTS" "$RAW"

python3 - "$RESULTS" <<'PY'
import csv, statistics, sys
from collections import defaultdict

rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
by = defaultdict(list)
for r in rows:
    by[(int(r["size"]), r["case"])].append(r)
sizes = sorted({k[0] for k in by})
cases = list(dict.fromkeys(r["case"] for r in rows))
med = lambda rs, k: statistics.median(float(r[k]) for r in rs)
bad = 0
for size in sizes:
    print(f"\n## {size} B body, cache hit\n")
    print("| case | bytes sent | req/s (median) | p50 µs | p99 µs | CPU µs/req | CPU per round | origin requests | errors |")
    print("|---|---:|---:|---:|---:|---:|---|---:|---:|")
    m = {}
    for c in cases:
        rs = by[(size, c)]
        m[c] = {k: med(rs, k) for k in ("rps", "p50_us", "p99_us", "cpu_us")}
        origin = sum(int(r["origin"]) for r in rs)
        errors = sum(int(r["errors"]) + int(r["non2xx"]) for r in rs)
        bad += origin + errors
        per = " / ".join(r["cpu_us"] for r in sorted(rs, key=lambda r: int(r["round"])))
        print(f"| {c} | {rs[0]['sent']} | {m[c]['rps']:.0f} | {m[c]['p50_us']:.0f} | {m[c]['p99_us']:.0f} | {m[c]['cpu_us']:.1f} | {per} | {origin} | {errors} |")
    base = m.get("identity-plain", {}).get("cpu_us")
    if base:
        print("\n| CPU/req ratio (medians) | vs identity-plain |")
        print("|---|---:|")
        for c in cases:
            print(f"| {c} | {m[c]['cpu_us'] / base:.2f} |")
if bad:
    print(f"\nWARNING: {bad} origin requests or failed requests during the measured runs.")
PY
