#!/usr/bin/env bash
# Debian packages the project needs, installed where missing when running as root with
# apt-get (as CI does); otherwise it says what is missing.
#   tools/system-deps.sh kafka   a JRE and Maven, for Apache Kafka (make run, demo, bench)
#   tools/system-deps.sh         those, plus what the network-gear and browser tests need
#                                (nftables, iproute2, curl, chromium, chromedriver, openssl);
#                                without them those tests skip (never with CI=true)
set -euo pipefail
need=()
command -v java >/dev/null 2>&1 || need+=(default-jre-headless)
command -v mvn >/dev/null 2>&1 || need+=(maven)
if [ "${1:-all}" != kafka ]; then
  command -v nft >/dev/null 2>&1 || need+=(nftables)
  command -v ip >/dev/null 2>&1 || need+=(iproute2)
  command -v curl >/dev/null 2>&1 || need+=(curl)
  command -v chromium >/dev/null 2>&1 || need+=(chromium)
  command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
  command -v openssl >/dev/null 2>&1 || need+=(openssl)
fi
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "system-deps: missing ${need[*]}: install them (as root: make system-deps)" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
echo "system-deps: apt-get install ${need[*]}"
apt-get install -y --no-install-recommends "${need[@]}" >/dev/null \
  || { apt-get update >/dev/null && apt-get install -y --no-install-recommends "${need[@]}" >/dev/null; }
