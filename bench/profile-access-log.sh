#!/usr/bin/env bash
# CPU cost of the access log alone: LINES access lines (typical shape, ~300 bytes) written through
# the project's default logger (async sonic-boom on fd 1) and AccessLog, 100 per event-loop turn,
# stdout to a file and to a pipe. Prints the process CPU time (user + system, threads included)
# per line, after the last line is flushed. Usage: bench/profile-access-log.sh [dist-dir ...]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DISTS=("$@"); [ ${#DISTS[@]} -eq 0 ] && DISTS=("$ROOT/dist")
LINES=${LINES:-300000}
OUT=$(mktemp -d /tmp/sy-al-XXXXXX); trap 'rm -rf "$OUT"' EXIT
CODE='
const dist = process.argv[1];
const { createLogger } = await import(dist + "/observability/logger.js");
const { AccessLog } = await import(dist + "/observability/access-log.js");
const logger = createLogger({ level: "info" });
const log = new AccessLog(logger.child({ component: "proxy" }), { kind: "access" });
const total = Number(process.argv[2]);
const paths = Array.from({ length: 64 }, (_, i) => "/api/users/" + i + "?page=" + (i * 7));
const t0 = process.cpuUsage();
let i = 0;
function batch() {
  for (const end = Math.min(i + 100, total); i < end; i++) {
    log.write({ reqId: "a1B2c3D4e5F6-" + i.toString(36), routeJson: "\"api-users\"", upstream: "http://127.0.0.1:9001",
      endpoint: "users/users-1", method: "GET", path: paths[i & 63], status: 200, ms: 0.8123 + (i & 7),
      error: undefined, reason: undefined, attempts: undefined });
  }
  if (i < total) return setImmediate(batch);
  logger.flush(() => {
    const u = process.cpuUsage(t0);
    process.stderr.write(((u.user + u.system) / total).toFixed(3) + "\n");
    process.exit(0);
  });
}
batch();
'
for d in "${DISTS[@]}"; do
  for r in 1 2 3; do
    f=$(node --no-warnings --input-type=module -e "$CODE" "$d" "$LINES" 2>&1 >"$OUT/file.log")
    p=$(node --no-warnings --input-type=module -e "$CODE" "$d" "$LINES" 2>&1 > >(cat > /dev/null))
    echo "dist=$d round=$r cpu_us_per_line: stdout_file=$f stdout_pipe=$p"
  done
done
