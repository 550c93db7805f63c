#!/usr/bin/env bash
# Installs every Debian package Spindle's build and tests need. Idempotent and
# quick: checks each package with dpkg-query and does nothing when all are
# present; otherwise runs apt-get update once and installs the missing ones,
# as root directly or through sudo.
set -euo pipefail
# clang only recommends libclang-rt-14-dev (libFuzzer, the sanitizer
# runtimes), and recommends are not installed: `make fuzz-ci` needs it.
# git lists the files `make format-check` checks; ca-certificates lets npm
# reach its registry over https (neither is in a minimal Debian).
pkgs=(build-essential cmake pkg-config clang clang-format libclang-rt-14-dev
      libmicrohttpd-dev libjansson-dev libpcre2-dev libutf8proc-dev libxxhash-dev python3
      git ca-certificates)
# Node.js (e2e tests with the openai npm client) ships with the machine image;
# install Debian's only where it is missing.
command -v node >/dev/null && command -v npm >/dev/null || pkgs+=(nodejs npm)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}" >&2
  SUDO=()
  if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null; then
      echo "install-deps: not root and no sudo: install these as root: ${missing[*]}" >&2
      exit 1
    fi
    SUDO=(sudo)
  fi
  "${SUDO[@]}" apt-get update -qq
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
echo "install-deps: all packages present"
