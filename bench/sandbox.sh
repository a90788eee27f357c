#!/usr/bin/env bash
# Sandbox and reload timings, on loopback only, bounded in count:
#  - a looping plugin: time from the request to its answer (the per-call
#    deadline is `timeout`, 50 ms by default, enforced by epoch interruption);
#  - a trapping plugin: time to the 500 (a fresh instance replaces the dead one);
#  - a reload with the default bundle plus one plugin: POST /reload round trip.
# Usage: bench/sandbox.sh [ROUNDS]   (needs a release build: cargo build --release -p lacquer,
# and the test guests: cargo test -p lacquer-tests --no-run)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="${LACQUER:-$root/target/release/lacquer}"
faulty="$root/target/wasm/wasm32-wasip2/release/faulty.wasm"
rounds="${1:-20}"
[ -x "$bin" ] || { echo "missing $bin: cargo build --release -p lacquer" >&2; exit 1; }
[ -f "$faulty" ] || { echo "missing $faulty: cargo test -p lacquer-tests --no-run" >&2; exit 1; }
port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
work="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
o=$(port); p=$(port); a=$(port)
mkdir -p "$work/site" && echo ok > "$work/site/index.html"
python3 -m http.server "$o" --bind 127.0.0.1 -d "$work/site" >/dev/null 2>&1 & pids+=($!)
cat > "$work/lacquer.toml" <<TOML
[server]
listen = "127.0.0.1:$p"
[admin]
listen = "127.0.0.1:$a"
[[backends]]
name = "app"
url = "http://127.0.0.1:$o"
[[plugins]]
name = "cache-policy"
builtin = "cache-policy"
[[plugins]]
name = "error-pages"
builtin = "error-pages"
[[plugins]]
name = "looping"
timeout = "50ms"
path = "$faulty"
config = { mode = "loop", path_prefix = "/loop" }
[[plugins]]
name = "trapping"
path = "$faulty"
config = { mode = "trap", path_prefix = "/trap" }
TOML
LACQUER_LOG=off "$bin" serve --config "$work/lacquer.toml" & pids+=($!)
up=0
for _ in $(seq 200); do curl -sf -o /dev/null "http://127.0.0.1:$a/status" && { up=1; break; }; sleep 0.05; done
[ "$up" = 1 ] || { echo "lacquer did not start" >&2; exit 1; }
median() { sort -n | awk '{v[NR]=$1} END {m=(NR%2)?v[(NR+1)/2]:(v[NR/2]+v[NR/2+1])/2; printf "%.2f ms (n=%d, min %.2f, max %.2f)\n", m*1000, NR, v[1]*1000, v[NR]*1000}'; }
t() { curl -s -o /dev/null -w '%{time_total}\n' "$@"; }
echo "looping plugin, request to 500:   $(for _ in $(seq "$rounds"); do t "http://127.0.0.1:$p/loop"; done | median)"
echo "trapping plugin, request to 500:  $(for _ in $(seq "$rounds"); do t "http://127.0.0.1:$p/trap"; done | median)"
echo "healthy request (pass-through):   $(for _ in $(seq "$rounds"); do t "http://127.0.0.1:$p/index.html"; done | median)"
echo "reload (3 plugins + 1 by path):   $(for _ in $(seq 10); do t -X POST "http://127.0.0.1:$a/reload"; done | median)"
