#!/usr/bin/env bash
# Writes the seed corpora fuzz/corpus/<target>/ from values used in the unit
# tests of cache-semantics (and of host/src/admin/query.rs and
# host/src/plugin/limits.rs). The format of each target's input is described
# at the top of fuzz_targets/<target>.rs and in src/lib.rs. Re-run after
# editing; the files are committed.
set -euo pipefail
cd "$(dirname "$0")"
rm -rf corpus
mkdir -p corpus

# seed TARGET NAME: writes stdin to corpus/TARGET/NAME.
seed() {
  mkdir -p "corpus/$1"
  cat > "corpus/$1/$2"
}

# --- cache_control: request / (empty line) / response, :pseudo fields.
seed cache_control max-age <<'EOF'
:status 200
:response-time 1700000000
:now 1700000100

cache-control: max-age=60, s-maxage=30
date: Tue, 14 Nov 2023 22:13:20 GMT
EOF
seed cache_control quoted-and-duplicates <<'EOF'
cache-control: max-stale=1000, min-fresh=x, min-fresh=5

cache-control: max-age="3600", MaX-aGe=1
cache-control: extension="a, \"max-age=100", max-age=2
cache-control: no-cache="A, b", private="set-cookie", max-age=99999999999
EOF
seed cache_control response-directives <<'EOF'
cache-control: only-if-cached, max-age=0, stale-if-error=1

cache-control: No-StOrE, no-cache, private, public, s-maxage=60
cache-control: must-revalidate, proxy-revalidate, immutable, no-transform, must-understand
cache-control: stale-while-revalidate=30, stale-if-error="600"
EOF
seed cache_control expires <<'EOF'
:status 200
:request-time 1699999990
:response-time 1700000000
:now 1700003600

expires: Thu, 18 Aug 2050 02:01:18 GMT
date: Tue, 14 Nov 2023 22:13:20 GMT
age: 7200, 0
EOF
seed cache_control heuristic <<'EOF'
:status 404
:heuristic-percent 10
:heuristic-max 86400
:default-ttl 5
:default-sie 7
pragma: no-cache

last-modified: Mon, 13 Nov 2023 22:13:20 GMT
date: Tue, 14 Nov 2023 22:13:20 GMT
age: 7200;foo=bar
EOF
seed cache_control cdn-cache-control <<'EOF'
:targeted cdn-cache-control,surrogate-control
cache-control: max-stale

cdn-cache-control: max-age=3600, stale-while-revalidate=30
cache-control: max-age=1
expires: 0
EOF

# --- structured: one CDN-Cache-Control line per input line.
seed structured dictionary <<'EOF'
max-age=60;foo=bar, public
no-store, private, no-cache="a, b", s-maxage=5, stale-if-error=9
EOF
seed structured types <<'EOF'
x=(a b), y=:AQID:, z=?1, no-cache=?1, must-revalidate=?0
max-age="10000", stale-while-revalidate=1.5, s-maxage=-1
EOF
seed structured invalid <<'EOF'
max-age=3600
max-age=10000, &&&&&
EOF
seed structured numbers <<'EOF'
 max-age=2147483648 , s-maxage=99999999999
max-age=1234567890123456
a=(1 2
EOF

# --- date: the whole input is one HTTP-date.
printf 'Sun, 06 Nov 1994 08:49:37 GMT' | seed date imf-fixdate
printf 'Sunday, 06-Nov-94 08:49:37 GMT' | seed date rfc850
printf 'Sun Nov  6 08:49:37 1994' | seed date asctime
printf 'Thu, 29 Feb 2024 00:00:00 GMT' | seed date leap-day
printf 'Fri, 31 Dec 9999 23:59:60 GMT' | seed date leap-second
printf 'Thu, 18 Aug 2050 02:01:18 UTC' | seed date utc

# --- range: request / (empty line) / stored response, :len N.
seed range single <<'EOF'
:len 10000
range: bytes=0-99
EOF
seed range several <<'EOF'
:len 10
range: bytes=0-99,200-
EOF
seed range suffix <<'EOF'
:len 11
range: Bytes = -5
EOF
seed range if-range-etag <<'EOF'
:len 10
range: bytes=50-
if-range: "abc"

etag: "abc"
last-modified: Wed, 01 Jan 2020 00:00:00 GMT
EOF
seed range if-range-date <<'EOF'
:len 10
range: bytes=0-99999999999999999999999
if-range: Wednesday, 01-Jan-20 00:00:00 GMT

etag: W/"abc"
last-modified: Wed, 01 Jan 2020 00:00:00 GMT
EOF

# --- conditional: request / (empty line) / stored response, :method, :status.
seed conditional if-none-match <<'EOF'
:method GET
if-none-match: "a,b", "abcdef"

etag: "abcdef"
last-modified: Tue, 14 Nov 2023 21:23:20 GMT
date: Tue, 14 Nov 2023 22:13:20 GMT
EOF
seed conditional weak <<'EOF'
:method HEAD
if-none-match: W/"abcdef"
if-modified-since: Tuesday, 14-Nov-23 21:23:20 GMT

etag: w/"abcdef"
EOF
seed conditional if-match <<'EOF'
:method PUT
:status 200
if-match: "nope"
if-unmodified-since: Tue, 14 Nov 2023 21:06:40 GMT

etag: "abcdef"
last-modified: Tue, 14 Nov 2023 21:23:20 GMT
EOF
seed conditional if-modified-since <<'EOF'
if-modified-since: Tue, 14 Nov 2023 21:23:20 GMT
if-match: *

etag: abcdef
date: Tue, 14 Nov 2023 21:23:20 GMT
EOF

# --- vary: response / (empty line) / request A / (empty line) / request B.
seed vary names <<'EOF'
vary: Foo,Bar
vary: baz, FOO, Accept-Encoding

foo: 1, 2
accept-encoding: GZIP, br

foo: 1
foo: 2
accept-encoding: gzip,br
EOF
seed vary star <<'EOF'
vary: , *

accept-language: en, de

accept-language: eN, De
EOF
seed vary quoted <<'EOF'
vary: foo

foo: "a, b"

foo: "a,b"
EOF

# --- invalidate: response, :uri, :method, :status.
seed invalidate location <<'EOF'
:method POST
:status 201
:uri http://example.com/a/b/c?q=1
location: ../d/./e?x#frag
content-location: HTTP://EXAMPLE.com:80/a/b/c?q=1
EOF
seed invalidate other-origin <<'EOF'
:method DELETE
:status 303
:uri https://example.com:443/
location: //other.example/x
content-location: https:x/../y
EOF
seed invalidate scheme-relative <<'EOF'
:method M-SEARCH
:uri http://example.com/a/b
location: http:c/../d
content-location: ?only=query
EOF

# --- store: request / response / 304 or HEAD response; :method, :status,
# :head-status, :time.
seed store storable <<'EOF'
:method GET
:status 200
authorization: FOO

cache-control: max-age=3600, must-revalidate, private="set-cookie"
set-cookie: a=b
vary: foo
EOF
seed store hop-by-hop <<'EOF'
:status 299

connection: a, B
connection: close
a: 1
b: 2
c: 3
keep-alive: timeout=5
proxy-connection: keep-alive
te: trailers
trailer: x
transfer-encoding: chunked
upgrade: h2c
proxy-authenticate: Basic
cache-control: must-understand, no-store, max-age=60
EOF
seed store merge-304 <<'EOF'
:head-status 200
:time 1700000000

etag: "a"
content-length: 5
age: 30
date: Wed, 01 Jan 2020 00:00:00 GMT
x: 1
x: 2
cdn-cache-control: no-cache="x"

connection: a
a: 2
x: 3
etag: "a"
date: Thu, 02 Jan 2020 00:00:00 GMT
proxy-authenticate: x
EOF

# --- admin_query: the query string.
printf 'url=%%2Fa%%20b+c&host=Example.com&soft=1&x' | seed admin_query decode
printf 'url=%%zz%%e9%%&a=%%' | seed admin_query bad-escapes
printf 'prefix=/img/&hard=yes&tag=a&tag=b' | seed admin_query repeated

# --- plugin_output: one operation a line (see the target).
seed plugin_output set-and-append <<'EOF'
+x-a: 1
+X-A: 2
=x-a: 3
+content-type: text/plain
+Content-Length: 3
+x-bad: a\b
?204
?101
EOF
seed plugin_output many-fields <<'EOF'
#257
+x-a: 1
#1
=x-a: 1
?599
?600
EOF
seed plugin_output big-values <<'EOF'
*65536
+x-big: v
+x-big: v
+x-big: v
+x-big: v
*1
!content-type: text/plain
!transfer-encoding: chunked
EOF
