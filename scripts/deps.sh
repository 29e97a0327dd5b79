#!/usr/bin/env bash
# Debian packages msmix builds against. --check-or-install: install only when a header is missing
# (what `make` does on a fresh machine); --install: install unconditionally. Without root, prints the
# apt-get line to run instead.
set -euo pipefail
PACKAGES="g++ make doctest-dev libfmt-dev libopenblas-openmp-dev nlohmann-json3-dev libcli11-dev python3"
HEADERS="/usr/include/doctest/doctest.h /usr/include/fmt/format.h
/usr/include/x86_64-linux-gnu/openblas-openmp/cblas.h /usr/include/nlohmann/json.hpp /usr/include/CLI/CLI.hpp"

missing=0
for h in $HEADERS; do [ -f "$h" ] || { echo "deps: missing $h"; missing=1; }; done
if [ "${1:-}" = "--check-or-install" ] && [ "$missing" = 0 ]; then exit 0; fi

cmd="apt-get install -y --no-install-recommends $PACKAGES"
if [ "$(id -u)" = 0 ]; then
  echo "deps: apt-get update && $cmd"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $cmd
else
  echo "deps: not root; run: sudo apt-get update && sudo $cmd" >&2
  exit 1
fi
