#!/usr/bin/env bash
# Debian packages the project needs, installed where missing when running as root with
# apt-get (as CI does); otherwise it says what is missing.
#   tools/system-deps.sh kafka   a JRE and Maven, for Apache Kafka (make run, demo, bench)
#   tools/system-deps.sh         those, plus what the network-gear and browser tests need
#                                (nftables, iproute2, curl, chromium, chromedriver, openssl)
#                                and promtool (Debian's prometheus package) for the tests of
#                                deploy/prometheus; without them those tests skip (never
#                                with CI=true)
#   tools/system-deps.sh documents  Pango and the DejaVu fonts, which WeasyPrint needs to
#                                write invoices as PDF (also part of the default)
set -euo pipefail
need=()
# WeasyPrint loads Pango through cffi (libpango-1.0-0, libpangoft2-1.0-0) and lays out
# invoices in DejaVu Sans; ldconfig and fc-list say whether they are there.
documents() {
  local libs fonts
  libs=$(ldconfig -p 2>/dev/null || true)
  fonts=$(fc-list 2>/dev/null || true)
  [[ $libs == *libpango-1.0.so.0* ]] || need+=(libpango-1.0-0)
  [[ $libs == *libpangoft2-1.0.so.0* ]] || need+=(libpangoft2-1.0-0)
  [[ $fonts == *"DejaVu Sans"* ]] || need+=(fonts-dejavu-core fontconfig)
}
if [ "${1:-all}" = documents ]; then
  documents
else
  command -v java >/dev/null 2>&1 || need+=(default-jre-headless)
  command -v mvn >/dev/null 2>&1 || need+=(maven)
fi
if [ "${1:-all}" = all ]; then
  documents
  command -v nft >/dev/null 2>&1 || need+=(nftables)
  command -v ip >/dev/null 2>&1 || need+=(iproute2)
  command -v curl >/dev/null 2>&1 || need+=(curl)
  command -v chromium >/dev/null 2>&1 || need+=(chromium)
  command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
  command -v openssl >/dev/null 2>&1 || need+=(openssl)
  command -v promtool >/dev/null 2>&1 || need+=(prometheus)
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
