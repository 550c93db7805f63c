#!/usr/bin/env bash
# Installs every Debian package Spindle's build and tests need. Idempotent and
# quick: checks each package with dpkg-query and does nothing when all are
# present; otherwise runs apt-get update once and installs the missing ones,
# as root directly or through sudo.
set -euo pipefail
# clang only recommends libclang-rt-14-dev (libFuzzer, the sanitizer
# runtimes), and recommends are not installed: `make fuzz-ci` needs it.
# chromium: the chat page's tests drive it headless (tests/e2e/webui.test.mjs).
# git lists the files `make format-check` checks; ca-certificates lets npm
# reach its registry over https (neither is in a minimal Debian).
pkgs=(build-essential cmake pkg-config clang clang-format libclang-rt-14-dev
      libmicrohttpd-dev libjansson-dev libpcre2-dev libutf8proc-dev libxxhash-dev python3
      libpng-dev libjpeg62-turbo-dev libwebp-dev libgif-dev libcurl4-openssl-dev
      chromium xz-utils git ca-certificates)
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

# npm's cache gets every package of the lockfiles now (a no-op when it has
# them), so that building the chat page (webui/build.mjs, run by CMake) and
# the e2e tests' installs need no network afterwards.
root="$(cd "$(dirname "$0")/.." && pwd)"
for dir in webui tests/e2e; do
    tmp="$(mktemp -d)"
    cp "$root/$dir/package.json" "$root/$dir/package-lock.json" "$tmp/"
    (cd "$tmp" && npm ci --prefer-offline --ignore-scripts --no-audit --no-fund --loglevel=error \
        >/dev/null)
    rm -rf "$tmp"
done
echo "install-deps: npm cache filled (webui, tests/e2e)"
