#!/usr/bin/env bash
# Test-only system packages, installed idempotently: Debian's Chromium for the gallery test.
# Without root or apt the tests that need it skip with a message; nothing else depends on it.
set -u
if command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ]; then exit 0; fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "[gapcam test deps] chromium not installed and no root apt-get: the gallery browser test will be skipped"
  exit 0
fi
echo "[gapcam test deps] installing Debian's chromium for the gallery test"
export DEBIAN_FRONTEND=noninteractive
(apt-get update -qq && apt-get install -y -qq chromium >/dev/null) \
  || echo "[gapcam test deps] chromium install failed: the gallery browser test will be skipped"
exit 0
