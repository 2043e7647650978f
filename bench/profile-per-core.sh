#!/usr/bin/env bash
# Per-core cost of Switchyard (access log on, to a file) against the bare undici proxy, in one run.
# For each round and each proxy: wrk for SECONDS, the proxy's CPU time (utime+stime, /proc/PID/stat)
# over the run divided by the requests wrk completed = CPU µs per request; and requests/s.
# Proxies on CPU 1, wrk and the upstream nginx on CPU 0 (as npm run bench pins them).
# Usage: bench/profile-per-core.sh [cli.js ...]   (env: ROUNDS=3 SECONDS_=5 CONNS=50 PROF=1 for --cpu-prof,
# LOG_BESIDE=1 to write each Switchyard's stdout next to its services file, in the watched directory)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CLIS=("$@"); [ ${#CLIS[@]} -eq 0 ] && CLIS=("$ROOT/dist/cli.js")
ROUNDS=${ROUNDS:-3}; SECS=${SECONDS_:-5}; CONNS=${CONNS:-50}
W=$(mktemp -d /tmp/sy-pc-XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -INT "$p" 2>/dev/null || true; done; sleep 1; for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$W"; }
trap cleanup EXIT
port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
body=$(printf 'upstream %-89s\n' x | tr ' ' '.')
U1=$(port); U2=$(port)
mkdir -p "$W/nginx"/{client,proxy,fastcgi,uwsgi,scgi}
cat > "$W/nginx/nginx.conf" <<NGX
worker_processes 1; daemon off; pid $W/nginx/nginx.pid; error_log $W/nginx/error.log warn;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000; keepalive_timeout 65s;
  client_body_temp_path $W/nginx/client; proxy_temp_path $W/nginx/proxy; fastcgi_temp_path $W/nginx/fastcgi; uwsgi_temp_path $W/nginx/uwsgi; scgi_temp_path $W/nginx/scgi;
  server { listen 127.0.0.1:$U1; location / { default_type text/plain; return 200 '$body'; } }
  server { listen 127.0.0.1:$U2; location / { default_type text/plain; return 200 '$body'; } } }
NGX
taskset -c 0 nginx -c "$W/nginx/nginx.conf" -p "$W/nginx" & PIDS+=($!)
NAMES=(bare-undici); URLS=(); PPIDS=()
P=$(port); taskset -c 1 node --import tsx "$ROOT/bench/bare-undici.ts" --listen 127.0.0.1:$P --upstreams 127.0.0.1:$U1,127.0.0.1:$U2 > "$W/bare.log" 2>&1 & PIDS+=($!); PPIDS+=($!); URLS+=("http://127.0.0.1:$P/")
mkdir -p "$W/conf/templates"
printf 'routes:\n  - name: bench\n    match: { path: / }\n    to: [ { service: bench } ]\n' > "$W/conf/templates/bench.yaml"
printf 'services:\n  bench:\n    - { id: u1, address: 127.0.0.1, port: %s, tags: [], status: passing }\n    - { id: u2, address: 127.0.0.1, port: %s, tags: [], status: passing }\n' $U1 $U2 > "$W/conf/services.yaml"
i=0
for CLI in "${CLIS[@]}"; do
  i=$((i+1)); P=$(port); A=$(port)
  WORKERS=(); node "$CLI" --help | grep -q -- '--workers' && WORKERS=(--workers 1)
  PROFARGS=(); [ "${PROF:-0}" = 1 ] && PROFARGS=(--cpu-prof --cpu-prof-dir="$ROOT/.tmp/prof-$i")
  taskset -c 1 node "${PROFARGS[@]}" "$CLI" "${WORKERS[@]}" --listen 127.0.0.1:$P --admin 127.0.0.1:$A \
    --templates "$W/conf/templates" --services "$W/conf/services.yaml" > "$W${LOG_BESIDE:+/conf}/access-$i.log" 2>&1 & PIDS+=($!); PPIDS+=($!)
  NAMES+=("sy$i:$(basename "$(dirname "$(dirname "$CLI")")")"); URLS+=("http://127.0.0.1:$P/")
done
for u in "${URLS[@]}"; do for _ in $(seq 100); do curl -sf -o /dev/null "$u" && break; sleep 0.1; done; done
HZ=$(getconf CLK_TCK)
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
for u in "${URLS[@]}"; do taskset -c 0 wrk -t1 -c$CONNS -d2s "$u" > /dev/null; done # warm-up
for r in $(seq "$ROUNDS"); do
  line="round $r:"
  for k in "${!URLS[@]}"; do
    t0=$(ticks "${PPIDS[$k]}")
    out=$(taskset -c 0 wrk -t1 -c$CONNS -d${SECS}s "${URLS[$k]}")
    t1=$(ticks "${PPIDS[$k]}")
    reqs=$(echo "$out" | awk '/requests in/ {print $1}')
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    non2xx=$(echo "$out" | awk '/Non-2xx/ {print $NF}')
    us=$(( (t1 - t0) * 1000000 / HZ / reqs ))
    line="$line  ${NAMES[$k]} rps=${rps%.*} cpu_us_per_req=$us${non2xx:+ non2xx=$non2xx}"
  done
  echo "$line"
done
