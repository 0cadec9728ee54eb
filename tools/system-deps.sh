#!/usr/bin/env bash
# Debian packages the network-gear and browser tests need (nftables, iproute2, curl,
# chromium, chromedriver, openssl). Run by `make test`: installs what is missing when
# running as root with apt-get (as CI does); otherwise it says what is missing and those
# tests skip (they never skip with CI=true).
set -euo pipefail
need=()
command -v nft >/dev/null 2>&1 || need+=(nftables)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "system-deps: missing ${need[*]}: the tests needing them will skip (run as root to install)" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
echo "system-deps: apt-get install ${need[*]}"
apt-get install -y --no-install-recommends "${need[@]}" >/dev/null \
  || { apt-get update >/dev/null && apt-get install -y --no-install-recommends "${need[@]}" >/dev/null; }
