#!/usr/bin/env bash
# Installs what `npm run bench` needs from Debian: haproxy, nginx, wrk (and taskset, from
# util-linux). Idempotent and quick when everything is already there; needs root (or sudo) otherwise.
set -euo pipefail

need=()
command -v haproxy >/dev/null 2>&1 || need+=(haproxy)
command -v nginx >/dev/null 2>&1 || need+=(nginx)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v taskset >/dev/null 2>&1 || need+=(util-linux)

if [ ${#need[@]} -eq 0 ]; then
  echo "bench/setup.sh: haproxy, nginx, wrk and taskset are installed"
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "bench/setup.sh: missing ${need[*]} and no apt-get here; install them by hand" >&2
  exit 1
fi

sudo=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then sudo=(sudo); else
    echo "bench/setup.sh: missing ${need[*]}; run as root: apt-get update && apt-get install -y ${need[*]}" >&2
    exit 1
  fi
fi

echo "bench/setup.sh: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"

for c in haproxy nginx wrk; do
  command -v "$c" >/dev/null 2>&1 || { echo "bench/setup.sh: $c still missing after install" >&2; exit 1; }
done
echo "bench/setup.sh: done"
