#!/usr/bin/env bash
# Installs what `npm run bench` needs from Debian: haproxy, nginx, wrk (and taskset, from
# util-linux), plus caddy when apt knows it (optional: its row is skipped without it). Idempotent
# and quick when everything is already there; needs root (or sudo) otherwise.
set -euo pipefail

need=()
command -v haproxy >/dev/null 2>&1 || need+=(haproxy)
command -v nginx >/dev/null 2>&1 || need+=(nginx)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v taskset >/dev/null 2>&1 || need+=(util-linux)
want=()
if ! command -v caddy >/dev/null 2>&1 && command -v apt-cache >/dev/null 2>&1 && apt-cache show caddy >/dev/null 2>&1; then want+=(caddy); fi

if [ ${#need[@]} -eq 0 ] && [ ${#want[@]} -eq 0 ]; then
  echo "bench/setup.sh: haproxy, nginx, wrk and taskset are installed (caddy: $(command -v caddy >/dev/null 2>&1 && echo yes || echo 'no, optional'))"
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "bench/setup.sh: missing ${need[*]} and no apt-get here; install them by hand" >&2
  exit 1
fi

sudo=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then sudo=(sudo); else
    if [ ${#need[@]} -eq 0 ]; then echo "bench/setup.sh: caddy (optional) not installed: run as root to add it"; exit 0; fi
    echo "bench/setup.sh: missing ${need[*]}; run as root: apt-get update && apt-get install -y ${need[*]}" >&2
    exit 1
  fi
fi

echo "bench/setup.sh: installing ${need[*]} ${want[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
if [ ${#need[@]} -gt 0 ]; then
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
if [ ${#want[@]} -gt 0 ]; then
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${want[@]}" ||
    echo "bench/setup.sh: caddy (optional) could not be installed; its row will be skipped" >&2
fi

for c in haproxy nginx wrk; do
  command -v "$c" >/dev/null 2>&1 || { echo "bench/setup.sh: $c still missing after install" >&2; exit 1; }
done
echo "bench/setup.sh: done"
