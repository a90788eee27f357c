#!/usr/bin/env bash
# A cluster of 3 Lacquer nodes on one redis-server vs 3 independent nodes:
# origin fetches and hit ratio for the same URL mix sent round-robin to the
# three nodes (as a load balancer would), then purge propagation: the time
# from a PURGE answered on node 0 until nodes 1 and 2 no longer serve the
# purged copy (p50/p99).
#
#   bench/cluster.sh
#   REQUESTS=30000 URLS=3000 PURGES=200 bench/cluster.sh
#
# Settings (environment): REQUESTS (20000) per mode, URLS distinct URLs
# (2000, drawn with a Zipf-like skew, s=1), PURGES (100) purge rounds,
# LOCAL_TTL ([cluster] local_ttl, "5s"), HEARTBEAT ("1s"), LACQUER (binary,
# default target/release/lacquer, built if missing), KEEP_WORK=1 keeps the
# temporary directory. The counts (origin fetches, hits) do not depend on the
# build; the propagation times do a little.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

REQUESTS=${REQUESTS:-20000}
URLS=${URLS:-2000}
PURGES=${PURGES:-100}
LOCAL_TTL=${LOCAL_TTL:-5s}
HEARTBEAT=${HEARTBEAT:-1s}

need curl curl
need nginx nginx
need redis-server redis-server
need python3 python3
need_lacquer
bench_init

echo "# Lacquer cluster benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')"
machine
echo "$REQUESTS requests per mode over $URLS URLs (Zipf s=1), round-robin over 3 nodes; $PURGES purges"
echo

# The origin: nginx answering every /obj/N with the same 1 KB body, fresh for
# an hour; its access log counts what reaches it.
ORIGIN_LOCATION='location / { try_files /1024.txt =404; add_header Cache-Control "max-age=3600"; }'
start_origin 1024

start_redis

# start_nodes MODE: three nodes named MODE-0..2; "cluster" joins them.
start_nodes() {
    local mode=$1 i ports nodes=() list
    read -r -a ports <<<"$(free_ports 6)"
    for i in 0 1 2; do
        nodes+=("\"http://127.0.0.1:${ports[$i]}\"")
    done
    list=$(IFS=,; echo "${nodes[*]}")
    for i in 0 1 2; do
        local name=$mode-$i dir=$WORK/$mode-$i
        mkdir -p "$dir"
        PORT[$name]=${ports[$i]}
        ADMIN[$name]=${ports[$((i + 3))]}
        cat >"$dir/lacquer.toml" <<EOF
[server]
listen = "127.0.0.1:${PORT[$name]}"

[admin]
listen = "127.0.0.1:${ADMIN[$name]}"

[[backends]]
name = "origin"
url = "http://127.0.0.1:${PORT[origin]}"
EOF
        if [[ $mode == cluster ]]; then
            cat >>"$dir/lacquer.toml" <<EOF

[cluster]
nodes = [$list]
self = "http://127.0.0.1:${PORT[$name]}"
redis = "$REDIS_URL"
secret = "bench-secret-0123456789"
key_prefix = "bench"
heartbeat = "$HEARTBEAT"
local_ttl = "$LOCAL_TTL"
EOF
        fi
        spawn "$name" "$dir/lacquer.log" env -u RUST_LOG "$LACQUER" serve --config "$dir/lacquer.toml"
        wait_http "$name" "http://127.0.0.1:${ADMIN[$name]}/metrics" "$dir/lacquer.log"
    done
    if [[ $mode == cluster ]]; then
        # Wait (bounded) until every node sees the three.
        for i in 0 1 2; do
            local up=0
            for _ in $(seq 100); do
                up=$(curl -s --max-time 1 "http://127.0.0.1:${ADMIN[$mode-$i]}/metrics" |
                    awk '$1 == "lacquer_cluster_nodes_up" {print $2}')
                [[ $up == 3 ]] && break
                sleep 0.1
            done
            [[ $up == 3 ]] || die "$mode-$i sees $up nodes, not 3"
        done
    fi
}

# load MODE: the URL mix, round-robin over the mode's nodes; prints
# "requests hits" as the clients saw them (x-cache).
load() {
    local mode=$1
    python3 - "$REQUESTS" "$URLS" "${PORT[$mode-0]}" "${PORT[$mode-1]}" "${PORT[$mode-2]}" <<'EOF'
import http.client, random, sys
n, urls = int(sys.argv[1]), int(sys.argv[2])
ports = [int(p) for p in sys.argv[3:]]
rng = random.Random(42)
weights = [1 / (k + 1) for k in range(urls)]
picks = rng.choices(range(urls), weights=weights, k=n)
conns = [http.client.HTTPConnection("127.0.0.1", p, timeout=10) for p in ports]
hits = failed = 0
for i, k in enumerate(picks):
    c = conns[i % 3]
    c.request("GET", f"/obj/{k}", headers={"Host": "bench.example"})
    r = c.getresponse()
    r.read()
    if r.status != 200:
        failed += 1
    if r.getheader("x-cache") == "HIT":
        hits += 1
print(n, hits, failed)
EOF
}

# propagation: PURGES rounds of cache /purge/K on the 3 cluster nodes, PURGE
# on node 0, poll nodes 1 and 2 (their /status) until each has applied it;
# prints p50, p99 and max in ms. (A node's x-cache is no measure: the owner
# may legitimately fetch the URL again at once for another node.)
propagation() {
    python3 - "$PURGES" "${PORT[cluster-0]}" "${PORT[cluster-1]}" "${PORT[cluster-2]}" \
        "${ADMIN[cluster-1]}" "${ADMIN[cluster-2]}" <<'EOF'
import http.client, json, sys, time
rounds = int(sys.argv[1])
ports = [int(p) for p in sys.argv[2:5]]
admins = [int(p) for p in sys.argv[5:7]]
conns = [http.client.HTTPConnection("127.0.0.1", p, timeout=10) for p in ports]
adm = [http.client.HTTPConnection("127.0.0.1", p, timeout=10) for p in admins]
H = {"Host": "bench.example"}
def get(c, path):
    c.request("GET", path, headers=H)
    r = c.getresponse(); r.read()
    return r.getheader("x-cache")
def applied(c):
    c.request("GET", "/status")
    r = c.getresponse()
    return json.loads(r.read())["cluster"]["applied"]
times = []
for k in range(rounds):
    path = f"/purge/{k}"
    for c in conns:
        get(c, path)
    before = [applied(a) for a in adm]
    conns[0].request("PURGE", path, headers=H)
    t0 = time.monotonic()
    r = conns[0].getresponse(); r.read()
    assert r.status == 200, r.status
    pending = {0, 1}
    deadline = t0 + 10
    while pending and time.monotonic() < deadline:
        for i in list(pending):
            if applied(adm[i]) > before[i]:
                pending.discard(i)
    assert not pending, "not propagated within 10 s"
    times.append((time.monotonic() - t0) * 1000)
times.sort()
p = lambda q: times[min(len(times) - 1, int(q * len(times)))]
print(f"{p(0.5):.1f} {p(0.99):.1f} {times[-1]:.1f}")
EOF
}

printf '| mode | requests | origin fetches | answered without the origin | x-cache HIT (of the node asked) | failed |\n|---|---|---|---|---|---|\n'
for mode in independent cluster; do
    start_nodes "$mode"
    before=$(origin_requests)
    read -r n hits failed <<<"$(timeout 600 bash -c "$(declare -f load); $(declare -p PORT REQUESTS URLS); load $mode")"
    [[ -n ${failed:-} ]] || die "the $mode load failed (see above)"
    fetched=$(($(origin_requests) - before))
    printf '| %s (3 nodes) | %d | %d | %s | %s | %d |\n' "$mode" "$n" "$fetched" \
        "$(python3 -c "print(f'{1 - $fetched / $n:.1%}')")" \
        "$(python3 -c "print(f'{$hits / $n:.1%}')")" "$failed"
done
echo
read -r p50 p99 max <<<"$(timeout 600 bash -c "$(declare -f propagation); $(declare -p PORT ADMIN PURGES); propagation")"
[[ -n ${max:-} ]] || die "purge propagation failed (see above)"
echo "purge propagation (PURGE sent on node 0 until applied on nodes 1 and 2, polled through /status) over $PURGES purges: p50 ${p50} ms, p99 ${p99} ms, max ${max} ms"
