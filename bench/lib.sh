# Shared helpers for the benchmarks; sourced by run.sh and plugin-cost.sh.
#
# Everything listens on 127.0.0.1 on ports picked at runtime; every process
# started here is recorded and stopped (by pid) when the script exits.

set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)
LACQUER=${LACQUER:-$REPO/target/release/lacquer}
# Worker processes for the nginx caching proxy (Varnish and Lacquer size
# their thread pools from the machine; nginx needs to be told).
NGINX_WORKERS=${NGINX_WORKERS:-auto}

declare -A PORT=() ADMIN=() PIDOF=()
STARTED=()
WORK=""

log() { printf '%s\n' "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

cleanup() {
    local pid i
    for pid in "${STARTED[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${STARTED[@]}"; do
        for i in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    STARTED=()
    if [[ -n "$WORK" && -d "$WORK" && -z "${KEEP_WORK:-}" ]]; then
        rm -rf "$WORK"
    elif [[ -n "$WORK" ]]; then
        log "work directory kept: $WORK"
    fi
}

bench_init() {
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    WORK=$(mktemp -d -t lacquer-bench.XXXXXX)
    # Varnish's and nginx's unprivileged workers must be able to read it.
    chmod 755 "$WORK"
}

# need COMMAND PACKAGE: install PACKAGE from the distribution if COMMAND is missing.
need() {
    local cmd=$1 pkg=$2
    command -v "$cmd" >/dev/null 2>&1 && return 0
    [[ -x "/usr/sbin/$cmd" ]] && return 0
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
        log "installing $pkg (apt-get install -y $pkg)"
        DEBIAN_FRONTEND=noninteractive apt-get install -y "$pkg" >&2 ||
            { apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y "$pkg" >&2; } ||
            die "could not install $pkg"
    else
        die "$cmd is missing: install it with: sudo apt-get install -y $pkg"
    fi
}

need_tools() {
    need python3 python3
    need curl curl
    need wrk wrk
    need nginx nginx
    need varnishd varnish
    need cc gcc # Varnish compiles its VCL with the C compiler
    PATH=$PATH:/usr/sbin
    # Debian's package starts the system-wide services; they are not used here.
}

need_lacquer() {
    if [[ ! -x "$LACQUER" ]]; then
        log "building $LACQUER (cargo build --release -p lacquer; the first build takes several minutes)"
        (cd "$REPO" && cargo build --release -p lacquer >&2) || die "cargo build failed"
    fi
}

# free_ports N: print N distinct free TCP ports on 127.0.0.1.
free_ports() {
    python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

# spawn NAME LOGFILE CMD...: start CMD in the background, remember its pid.
# With PIN=1 every server (and the origin) runs on CPU 0 and wrk on CPU 1
# (taskset), so the load generator never competes with what it measures.
spawn() {
    local name=$1 logf=$2
    shift 2
    if [[ -n ${PIN:-} ]]; then
        set -- taskset -c 0 "$@"
    fi
    "$@" >"$logf" 2>&1 &
    PIDOF[$name]=$!
    STARTED+=("$!")
}

# wait_http NAME URL LOGFILE: wait (up to 15 s) until URL answers; fail clearly if not.
# An https URL is not verified (the benchmarks' own certificate).
wait_http() {
    local name=$1 url=$2 logf=$3 i
    for i in $(seq 150); do
        if ! kill -0 "${PIDOF[$name]}" 2>/dev/null; then
            log "--- $logf"
            tail -n 30 "$logf" >&2 || true
            die "$name exited during startup (log above)"
        fi
        if curl -sk -o /dev/null --max-time 1 "$url"; then
            return 0
        fi
        sleep 0.1
    done
    log "--- $logf"
    tail -n 30 "$logf" >&2 || true
    die "$name did not answer $url within 15 s (log above)"
}

# The origin: nginx serving static files with Cache-Control: max-age=3600.
# Its access log counts the requests that reach it (a cache-hit run adds none).
# ORIGIN_LOCATION replaces its `location /` block (e.g. one file for every URL).
start_origin() {
    local dir=$WORK/origin size
    local location=${ORIGIN_LOCATION:-'location / { add_header Cache-Control "max-age=3600"; }'}
    mkdir -p "$dir/www"
    for size in "$@"; do
        head -c "$size" /dev/zero | tr '\0' 'x' >"$dir/www/$size.txt"
    done
    chmod -R a+rX "$dir"
    PORT[origin]=$(free_ports 1)
    cat >"$dir/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 1024; }
http {
    default_type text/plain;
    access_log $dir/access.log;
    client_body_temp_path $dir/tmp-body;
    proxy_temp_path $dir/tmp-proxy;
    fastcgi_temp_path $dir/tmp-fastcgi;
    uwsgi_temp_path $dir/tmp-uwsgi;
    scgi_temp_path $dir/tmp-scgi;
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:${PORT[origin]};
        root $dir/www;
        $location
    }
}
EOF
    : >"$dir/access.log"
    spawn origin "$dir/stdout.log" nginx -e "$dir/error.log" -p "$dir" -c "$dir/nginx.conf"
    wait_http origin "http://127.0.0.1:${PORT[origin]}/$1.txt" "$dir/error.log"
}

origin_requests() { wc -l <"$WORK/origin/access.log"; }

start_varnish() {
    local dir=$WORK/varnish
    mkdir -p "$dir"
    PORT[varnish]=$(free_ports 1)
    # Default VCL (builtin rules); -T none: no management listener.
    spawn varnish "$dir/varnishd.log" varnishd -F -n "$dir/work" -T none \
        -a "127.0.0.1:${PORT[varnish]}" -b "127.0.0.1:${PORT[origin]}" -s malloc,256m
    wait_http varnish "http://127.0.0.1:${PORT[varnish]}/" "$dir/varnishd.log"
}

# start_redis: redis-server on a Unix socket in the work directory, no
# persistence; sets REDIS_URL (for `[cluster] redis`).
start_redis() {
    local rdir=$WORK/redis
    mkdir -p "$rdir"
    spawn redis "$rdir/redis.log" redis-server --port 0 --unixsocket "$rdir/redis.sock" \
        --save '' --appendonly no --dir "$rdir"
    for _ in $(seq 100); do
        [[ -S $rdir/redis.sock ]] && break
        sleep 0.1
    done
    [[ -S $rdir/redis.sock ]] || die "redis-server did not start (see $rdir/redis.log)"
    REDIS_URL="redis+unix://$rdir/redis.sock"
}

# start_nginx_cache [LISTEN_OPTIONS SERVER_LINES]: nginx proxy_cache in front of
# the origin; e.g. "ssl http2" and the ssl_* lines for a TLS listener.
start_nginx_cache() {
    local dir=$WORK/nginx listen_opts=${1:-} server_lines=${2:-} scheme=http
    [[ $listen_opts == *ssl* ]] && scheme=https
    mkdir -p "$dir"
    PORT[nginx]=$(free_ports 1)
    cat >"$dir/nginx.conf" <<EOF
worker_processes $NGINX_WORKERS;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $dir/tmp-body;
    proxy_temp_path $dir/tmp-proxy;
    fastcgi_temp_path $dir/tmp-fastcgi;
    uwsgi_temp_path $dir/tmp-uwsgi;
    scgi_temp_path $dir/tmp-scgi;
    # The default (1000) closes client connections every 1000 requests; the
    # other proxies don't, so neither does this one.
    keepalive_requests 1000000;
    proxy_cache_path $dir/cache levels=1:2 keys_zone=bench:10m max_size=256m inactive=1h use_temp_path=off;
    upstream origin {
        server 127.0.0.1:${PORT[origin]};
        keepalive 32;
    }
    server {
        listen 127.0.0.1:${PORT[nginx]} $listen_opts;
$server_lines
        location / {
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_cache bench;
            add_header X-Cache-Status \$upstream_cache_status;
        }
    }
}
EOF
    spawn nginx "$dir/stdout.log" nginx -e "$dir/error.log" -p "$dir" -c "$dir/nginx.conf"
    wait_http nginx "$scheme://127.0.0.1:${PORT[nginx]}/" "$dir/error.log"
}

# Lacquer reads its log filter from LACQUER_LOG, but its config loader also
# treats every LACQUER_* variable as a config override, and some builds refuse
# LACQUER_LOG as an unknown key `log`. Validate the config with
# `lacquer check` (which also loads every plugin) and drop LACQUER_LOG if that
# is the only problem; at the default level (info) a cache hit logs nothing.
LOG_ENV=()
LOG_ENV_CHECKED=""
lacquer_log_env() {
    local cfg=$1 out
    [[ -n $LOG_ENV_CHECKED ]] && return 0
    LOG_ENV_CHECKED=1
    LOG_ENV=("LACQUER_LOG=${LACQUER_LOG:-warn}")
    if out=$(env "${LOG_ENV[@]}" "$LACQUER" check --config "$cfg" 2>&1); then
        return 0
    fi
    if grep -q 'unknown field `log`' <<<"$out" && out=$(env -u LACQUER_LOG "$LACQUER" check --config "$cfg" 2>&1); then
        log "note: this lacquer refuses LACQUER_LOG as a config key; running it without (default log level)"
        LOG_ENV=(-u LACQUER_LOG)
        return 0
    fi
    die "lacquer check --config $cfg failed: $out"
}

# start_lacquer NAME default|none|custom [EXTRA_TOML]: default = the default
# bundle, none = `plugins = []`, custom = the `[[plugins]]` sections given in
# EXTRA_TOML; EXTRA_TOML (any sections, e.g. `[server.tls]`) is appended
# whenever it is given. BINARY=path (environment) runs that build instead.
start_lacquer() {
    local name=$1 plugins=$2 extra=${3:-} dir=$WORK/$1 ports
    mkdir -p "$dir"
    read -r -a ports <<<"$(free_ports 2)"
    PORT[$name]=${ports[0]}
    ADMIN[$name]=${ports[1]}
    {
        if [[ $plugins == none ]]; then
            echo "plugins = []"
        fi
        cat <<EOF
[server]
listen = "127.0.0.1:${PORT[$name]}"

[admin]
listen = "127.0.0.1:${ADMIN[$name]}"

[[backends]]
name = "origin"
url = "http://127.0.0.1:${PORT[origin]}"
EOF
        if [[ -n $extra ]]; then
            # @LISTEN@ in the extra TOML is this instance's listen address.
            printf '\n%s\n' "${extra//@LISTEN@/127.0.0.1:${PORT[$name]}}"
        fi
    } >"$dir/lacquer.toml"
    lacquer_log_env "$dir/lacquer.toml"
    spawn "$name" "$dir/lacquer.log" env "${LOG_ENV[@]}" "${BINARY:-$LACQUER}" serve --config "$dir/lacquer.toml"
    wait_http "$name" "http://127.0.0.1:${ADMIN[$name]}/metrics" "$dir/lacquer.log"
}

# check_hit NAME URL SIZE: fetch twice; the second answer must be 200 with SIZE bytes.
check_hit() {
    local name=$1 url=$2 size=$3 out
    curl -s -o /dev/null --max-time 5 "$url" || die "$name: $url failed"
    out=$(curl -s -o /dev/null -D "$WORK/$name.headers" --max-time 5 -w '%{http_code} %{size_download}' "$url") ||
        die "$name: $url failed"
    [[ $out == "200 $size" ]] || die "$name: $url answered '$out', expected '200 $size'"
}

# wrk_run URL THREADS CONNS SECONDS: run wrk (bounded in time), print its RESULT fields.
wrk_run() {
    local url=$1 t=$2 c=$3 d=$4 out
    local pin=()
    [[ -n ${PIN:-} ]] && pin=(taskset -c 1)
    out=$(timeout $((d + 30)) "${pin[@]}" wrk -t"$t" -c"$c" -d"${d}s" --timeout 5s -s "$BENCH_DIR/report.lua" "$url" 2>&1) ||
        die "wrk failed on $url: $out"
    grep '^RESULT ' <<<"$out" | sed 's/^RESULT //' || die "wrk printed no result for $url: $out"
}

# cpu_ticks NAME: CPU time (user + system, in clock ticks) used so far by the
# process NAME and all its descendants (nginx workers, the Varnish child).
cpu_ticks() {
    python3 - "${PIDOF[$1]}" <<'EOF'
import os, sys
root = int(sys.argv[1])
kids, ticks = {}, {}
for d in os.listdir("/proc"):
    if not d.isdigit():
        continue
    try:
        s = open(f"/proc/{d}/stat").read()
    except OSError:
        continue
    f = s[s.rindex(")") + 2:].split()  # f[1] = ppid, f[11] = utime, f[12] = stime
    kids.setdefault(int(f[1]), []).append(int(d))
    ticks[int(d)] = int(f[11]) + int(f[12])
total, todo = 0, [root]
while todo:
    p = todo.pop()
    total += ticks.get(p, 0)
    todo += kids.get(p, [])
print(total)
EOF
}
CLK_TCK=$(getconf CLK_TCK)

# cpu_us_per_request TICKS REQUESTS: CPU microseconds per request.
cpu_us_per_request() {
    awk -v t="$1" -v n="$2" -v hz="$CLK_TCK" 'BEGIN { printf "%.1f", (n + 0 > 0) ? t * 1e6 / hz / n : 0 }'
}

# field NAME "k=v k=v ...": the value of NAME.
field() {
    local kv
    for kv in $2; do
        [[ ${kv%%=*} == "$1" ]] && { echo "${kv#*=}"; return 0; }
    done
    return 1
}

binary_size() {
    echo "Release binary: $LACQUER"
    ls -l "$LACQUER" | awk '{printf "  ls -l: %d bytes (%.1f MiB)\n", $5, $5 / 1048576}'
    if command -v size >/dev/null 2>&1; then
        size "$LACQUER" | sed 's/^/  /'
    fi
    # The release profile keeps line tables (debug = "line-tables-only").
    if command -v strip >/dev/null 2>&1 && [[ -n "$WORK" ]]; then
        strip -o "$WORK/lacquer.stripped" "$LACQUER" &&
            ls -l "$WORK/lacquer.stripped" | awk '{printf "  stripped: %d bytes (%.1f MiB)\n", $5, $5 / 1048576}'
    fi
}

machine() {
    echo "$(nproc) cores, $(uname -sr), $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')"
    echo "$(varnishd -V 2>&1 | head -1); $(nginx -v 2>&1); $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2)"
}
