#!/usr/bin/env bash
# The project's test command: installs what the tests need and a fresh machine lacks, writes the
# sample events from the shared kitten, then runs every test.
#   SHARED_DIR  folder holding model/, samples/, reference/ (default: ../shared beside the repo)
set -euo pipefail
cd "$(dirname "$0")/.."
export SHARED_DIR="${SHARED_DIR:-$(cd .. && pwd)/shared}"

# cargo-lambda (the Lambda emulator) and schemathesis (the OpenAPI checker), from PyPI.
pip_install() { python3 -m pip install --quiet --disable-pip-version-check "$@"; }
cargo lambda --version >/dev/null 2>&1 || pip_install cargo-lambda
command -v schemathesis >/dev/null 2>&1 || pip_install schemathesis
# From Debian (about a minute): nasm, which libjpeg-turbo's SIMD code is built with, and headless
# Chromium and chromedriver for tests/ui_browser.rs.
if ! command -v nasm >/dev/null 2>&1 || [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nasm chromium chromium-driver >/dev/null
fi

python3 scripts/make_events.py "$SHARED_DIR/samples/kitten.jpg"
cargo test --locked "$@"
