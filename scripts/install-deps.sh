#!/usr/bin/env bash
# Installs every Debian package Spindle's build and tests need. Idempotent:
# does nothing when all are present; runs apt-get update once otherwise.
set -euo pipefail
# clang only recommends libclang-rt-14-dev (libFuzzer, the sanitizer
# runtimes), and recommends are not installed: `make fuzz-ci` needs it.
pkgs=(build-essential cmake pkg-config clang clang-format libclang-rt-14-dev
      libmicrohttpd-dev libjansson-dev libpcre2-dev libutf8proc-dev libxxhash-dev python3
      xz-utils)
# Node.js (e2e tests with the openai npm client) ships with the machine image;
# install Debian's only where it is missing.
command -v node >/dev/null && command -v npm >/dev/null || pkgs+=(nodejs npm)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
echo "install-deps: all packages present"
