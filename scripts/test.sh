#!/usr/bin/env bash
# The project's test command: sample events from the shared kitten, then every test.
#   SHARED_DIR  folder holding model/, samples/, reference/ (default: ../shared beside the repo)
set -euo pipefail
cd "$(dirname "$0")/.."
export SHARED_DIR="${SHARED_DIR:-$(cd .. && pwd)/shared}"
if ! cargo lambda --version >/dev/null 2>&1; then
  python3 -m pip install --quiet --disable-pip-version-check cargo-lambda
fi
python3 scripts/make_events.py "$SHARED_DIR/samples/kitten.jpg"
cargo test --locked "$@"
