#!/usr/bin/env bash
# CPU cost of writes to unrelated files in the watched directories (issue 8, "File watching").
# Starts the CLI (idle, no traffic) with --services and --templates in one directory and its stdout
# to switchyard.log in that same directory, then a second process appends WRITES lines at about one
# write per millisecond (a proxy under load flushes its access log that often): to a file in another
# directory (control), to switchyard.log beside the services file, and to notes.log inside the
# templates directory. Prints the Switchyard process's CPU time (utime+stime from /proc/<pid>/stat)
# over each run, and the extra CPU per write over the control.
# Usage: bench/profile-file-watch.sh [path/to/cli.js] [writes]
set -euo pipefail
CLI=${1:-dist/cli.js}
WRITES=${2:-5000}
DIR=$(mktemp -d /tmp/sy-fw-XXXXXX)
trap 'kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; rm -rf "$DIR"' EXIT
mkdir "$DIR/templates"
printf 'routes:\n  - name: r\n    to: [ { service: s } ]\n' > "$DIR/templates/r.yaml"
printf 'services:\n  s:\n    - { id: s-1, address: 127.0.0.1, port: 9 }\n' > "$DIR/services.yaml"
WORKERS=()
node "$CLI" --help | grep -q -- '--workers' && WORKERS=(--workers 1)
node "$CLI" "${WORKERS[@]}" --listen 127.0.0.1:0 --admin 127.0.0.1:0 \
  --templates "$DIR/templates" --services "$DIR/services.yaml" >> "$DIR/switchyard.log" 2>&1 &
PID=$!
for _ in $(seq 100); do grep -q 'proxy listening' "$DIR/switchyard.log" 2>/dev/null && break; sleep 0.1; done
sleep 1 # let start-up work finish before the first sample
ticks() { awk '{print $14 + $15}' "/proc/$PID/stat"; }
HZ=$(getconf CLK_TCK)
# One writer run: WRITES appends to $1, one per ~millisecond; prints the Switchyard CPU ms it cost.
write_and_measure() {
  local t0 t1
  t0=$(ticks)
  node -e '
    const fs = require("node:fs");
    const fd = fs.openSync(process.argv[1], "a");
    const line = JSON.stringify({ level: 30, msg: "x".repeat(4000) }) + "\n";
    let n = 0;
    const tick = () => { fs.writeSync(fd, line); if (++n < Number(process.argv[2])) setTimeout(tick, 1); };
    tick();
  ' "$1" "$WRITES"
  sleep 0.5 # the trailing read after the last write
  t1=$(ticks)
  echo $(( (t1 - t0) * 1000 / HZ ))
}
# Idle: no writes at all for IDLE_S seconds (what polling the watched paths costs by itself).
IDLE_S=${IDLE_S:-10}
I0=$(ticks); sleep "$IDLE_S"; I1=$(ticks)
IDLE=$(( (I1 - I0) * 1000 / HZ ))
# Control: the same writes to a file in another directory (Switchyard idle for as long).
OTHER=$(mktemp -d /tmp/sy-fw-other-XXXXXX)
CONTROL=$(write_and_measure "$OTHER/other.log")
rm -rf "$OTHER"
BESIDE=$(write_and_measure "$DIR/switchyard.log")
INSIDE=$(write_and_measure "$DIR/templates/notes.log")
echo "cli=$CLI writes=$WRITES cpu_ms_idle_${IDLE_S}s=$IDLE cpu_ms_log_elsewhere=$CONTROL cpu_ms_log_beside_services=$BESIDE cpu_ms_log_in_templates=$INSIDE" \
  "extra_us_per_write_beside_services=$(( (BESIDE - CONTROL) * 1000 / WRITES )) extra_us_per_write_in_templates=$(( (INSIDE - CONTROL) * 1000 / WRITES ))"
