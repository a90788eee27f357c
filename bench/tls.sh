#!/usr/bin/env bash
# TLS termination: Lacquer's [server.tls] listener against nginx (proxy_cache
# behind `listen ... ssl http2`), both with the same ECDSA P-256 certificate
# and TLS settings, in front of one nginx origin, serving a cached 1 KiB
# object. Three shapes, interleaved over several rounds:
#
#   h1         wrk over https, HTTP/1.1 keep-alive
#   h2         h2load, h2 (ALPN), several streams per connection
#   handshake  wrk over https with `Connection: close`: every request is a
#              new connection and a full TLS 1.3 handshake (wrk does not
#              resume sessions), so req/s is handshakes per second
#
#   bench/tls.sh                       # 3 rounds, 10 s per run
#   ROUNDS=5 DURATION=10 bench/tls.sh
#
# Settings (environment): ROUNDS (3), DURATION seconds per run (10), THREADS
# (2), CONNS (32), STREAMS h2 streams per connection (10), HS_CONNS
# connections of the handshake run (16), WARMUP seconds (2), SHAPES
# ("h1 h2 handshake"), SYSTEMS ("nginx lacquer lacquer-none"), LACQUER
# (binary, default target/release/lacquer, built if missing), NGINX_WORKERS
# (auto), RAW=FILE (per-run results, tab-separated), KEEP_WORK=1, PIN=1
# (servers on CPU 0, load generators on CPU 1; with THREADS=1 and
# NGINX_WORKERS=1 for a like-for-like single core).

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
THREADS=${THREADS:-2}
CONNS=${CONNS:-32}
STREAMS=${STREAMS:-10}
HS_CONNS=${HS_CONNS:-16}
WARMUP=${WARMUP:-2}
SIZE=1024
read -r -a SHAPES <<<"${SHAPES:-h1 h2 handshake}"
read -r -a SYSTEMS <<<"${SYSTEMS:-nginx lacquer lacquer-none}"

need python3 python3
need curl curl
need wrk wrk
need nginx nginx
PATH=$PATH:/usr/sbin
need openssl openssl
need h2load nghttp2-client
need_lacquer
bench_init

# One certificate for both: ECDSA P-256, valid for bench.test.
CERT=$WORK/cert.pem
KEY=$WORK/key.pem
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$KEY" -out "$CERT" -days 2 -subj /CN=bench.test \
    -addext subjectAltName=DNS:bench.test 2>/dev/null || die "openssl could not make the certificate"
chmod 644 "$KEY" "$CERT"

# nginx terminating TLS in front of the origin, caching as in run.sh. The
# TLS settings are the ones rustls uses: TLS 1.2 and 1.3, X25519 then P-256,
# AEAD suites only, session tickets off (rustls' default server config
# resumes from a per-process cache; the handshake run never resumes).
start_nginx_tls() {
    start_nginx_cache "ssl http2" "        ssl_certificate $CERT;
        ssl_certificate_key $KEY;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_ecdh_curve X25519:prime256v1;
        ssl_ciphers ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305;
        ssl_session_tickets off;"
}

# start_lacquer_tls NAME default|none: Lacquer with a TLS listener.
start_lacquer_tls() {
    local name=$1 plugins=$2 tls_port
    tls_port=$(free_ports 1)
    start_lacquer "$name" "$plugins" "$(printf '[server.tls]\nlisten = "127.0.0.1:%s"\ncertificates = [{ chain = "%s", key = "%s" }]\n' "$tls_port" "$CERT" "$KEY")"
    PORT[$name]=$tls_port
    wait_http "$name" "https://127.0.0.1:$tls_port/" "$WORK/$name/lacquer.log"
}

echo "# Lacquer TLS termination benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)"
machine
echo "$(openssl version); $(h2load --version | head -1)"
echo "1 KiB cached object; wrk -t$THREADS -c$CONNS (h1), h2load -t$THREADS -c$CONNS -m$STREAMS (h2), wrk -t$THREADS -c$HS_CONNS with Connection: close (handshake); ${DURATION}s runs, $ROUNDS rounds, systems interleaved"
echo

start_origin "$SIZE"
for s in "${SYSTEMS[@]}"; do
    case $s in
    nginx) start_nginx_tls ;;
    lacquer) start_lacquer_tls lacquer default ;;
    lacquer-none) start_lacquer_tls lacquer-none none ;;
    *) die "unknown system $s (known: nginx lacquer lacquer-none)" ;;
    esac
done

url() { echo "https://127.0.0.1:${PORT[$1]}/$SIZE.txt"; }

# Fill every cache; check the body, ALPN h2 and what TLS was negotiated.
for s in "${SYSTEMS[@]}"; do
    curl -sk -o /dev/null "$(url "$s")" || die "$s: $(url "$s") failed"
    out=$(curl -sk --http2 -o /dev/null -w '%{http_code} %{size_download} %{http_version}' "$(url "$s")") || die "$s failed"
    [[ $out == "200 $SIZE 2" ]] || die "$s answered '$out', expected '200 $SIZE 2' (status, bytes, HTTP/2)"
    tls=$(openssl s_client -connect "127.0.0.1:${PORT[$s]}" -servername bench.test </dev/null 2>/dev/null |
        awk '/^New, / { print $2, $5 } /Server Temp Key/ { sub(/.*: /, ""); print }' | paste -sd' ')
    echo "$s: $tls"
done
echo

# h2load_run URL SECONDS: print "requests=N rps=R errors=E" for an h2 run.
h2load_run() {
    local url=$1 d=$2 out pin=()
    [[ -n ${PIN:-} ]] && pin=(taskset -c 1)
    out=$(timeout $((d + 30)) "${pin[@]}" h2load -t"$THREADS" -c"$CONNS" -m"$STREAMS" -D"$d" "$url" 2>&1) ||
        die "h2load failed on $url: $out"
    python3 - "$out" <<'EOF'
import re, sys
out = sys.argv[1]
rps = re.search(r"finished in [\d.]+s, ([\d.]+) req/s", out)
req = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored", out)
if not rps or not req:
    sys.exit("h2load printed no result: " + out)
done, ok, failed, errored = map(int, req.groups())
print(f"requests={ok} rps={rps.group(1)} errors={failed + errored}")
EOF
}

# hs_run URL SECONDS: wrk with Connection: close (one handshake per request).
hs_run() {
    local url=$1 d=$2 out pin=()
    [[ -n ${PIN:-} ]] && pin=(taskset -c 1)
    out=$(timeout $((d + 30)) "${pin[@]}" wrk -t"$THREADS" -c"$HS_CONNS" -d"${d}s" --timeout 5s \
        -H 'Connection: close' -s "$BENCH_DIR/report.lua" "$url" 2>&1) || die "wrk failed on $url: $out"
    grep '^RESULT ' <<<"$out" | sed 's/^RESULT //' || die "wrk printed no result for $url: $out"
}

measure() {
    local shape=$1 u=$2 d=$3
    case $shape in
    h1) wrk_run "$u" "$THREADS" "$CONNS" "$d" ;;
    h2) h2load_run "$u" "$d" ;;
    handshake) hs_run "$u" "$d" ;;
    esac
}

for s in "${SYSTEMS[@]}"; do
    for shape in "${SHAPES[@]}"; do
        measure "$shape" "$(url "$s")" "$WARMUP" >/dev/null
    done
done

RESULTS=$WORK/results.tsv
printf 'round\tshape\tsystem\trps\trequests\terrors\torigin\tcpu_us\n' >"$RESULTS"
n=${#SYSTEMS[@]}
for r in $(seq "$ROUNDS"); do
    for shape in "${SHAPES[@]}"; do
        for i in $(seq 0 $((n - 1))); do
            s=${SYSTEMS[$(((i + r - 1) % n))]}
            before=$(origin_requests)
            cpu0=$(cpu_ticks "$s")
            res=$(measure "$shape" "$(url "$s")" "$DURATION")
            cpu1=$(cpu_ticks "$s")
            after=$(origin_requests)
            reqs=$(field requests "$res")
            errs=$(($(field errors "$res") + $(field non2xx "$res" || echo 0)))
            cpu=$(cpu_us_per_request $((cpu1 - cpu0)) "$reqs")
            printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$shape" "$s" "$(field rps "$res")" \
                "$reqs" "$errs" "$((after - before))" "$cpu" >>"$RESULTS"
            log "round $r/$ROUNDS  $(printf '%-9s %-13s' "$shape" "$s") $(field rps "$res") req/s  cpu $cpu us/req  errors $errs"
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
    by[(r["shape"], r["system"])].append(r)
shapes = list(dict.fromkeys(r["shape"] for r in rows))
systems = list(dict.fromkeys(r["system"] for r in rows))
label = {
    "nginx": "nginx (ssl, proxy_cache)",
    "lacquer": "Lacquer (default bundle)",
    "lacquer-none": "Lacquer (plugins = [])",
}
title = {
    "h1": "HTTP/1.1 keep-alive over TLS (wrk)",
    "h2": "h2 over TLS (h2load)",
    "handshake": "a full handshake per request (wrk, Connection: close): req/s = handshakes/s",
}
med = lambda rs, k: statistics.median(float(r[k]) for r in rs)
bad = 0
for shape in shapes:
    print(f"\n## {title.get(shape, shape)}\n")
    print("| system | req/s (median) | CPU µs/req | req/s per round | origin requests | errors |")
    print("|---|---:|---:|---|---:|---:|")
    m = {}
    for s in systems:
        rs = by[(shape, s)]
        m[s] = {k: med(rs, k) for k in ("rps", "cpu_us")}
        errors = sum(int(r["errors"]) for r in rs)
        origin = sum(int(r["origin"]) for r in rs)
        bad += errors + origin
        per = " / ".join(f"{float(r['rps']):.0f}" for r in sorted(rs, key=lambda r: int(r["round"])))
        print(f"| {label.get(s, s)} | {m[s]['rps']:.0f} | {m[s]['cpu_us']:.1f} | {per} | {origin} | {errors} |")
    if "nginx" in m:
        print("\n| ratio to nginx (medians) | req/s | CPU/req |")
        print("|---|---:|---:|")
        for s in systems:
            if s != "nginx" and m["nginx"]["cpu_us"] and m["nginx"]["rps"]:
                print(f"| {label.get(s, s)} | {m[s]['rps'] / m['nginx']['rps']:.2f} | {m[s]['cpu_us'] / m['nginx']['cpu_us']:.2f} |")
if bad:
    print(f"\nWARNING: {bad} failed requests or origin requests during the measured runs (see the tables).")
EOF
