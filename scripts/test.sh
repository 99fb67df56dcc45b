#!/usr/bin/env bash
# Runs Larder's whole test suite. Installs what the tests need when it is
# missing (redis-server, from Debian's packages); the tests start their own
# private redis-server processes on free ports.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v redis-server >/dev/null 2>&1; then
  echo "redis-server is missing; installing it from Debian's packages" >&2
  if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq redis-server
  # The package may start its own service on 6379; the tests never use it.
fi
command -v redis-server >/dev/null 2>&1 || {
  echo "redis-server could not be installed; the tests need it (apt-get install redis-server)" >&2
  exit 1
}
echo "using $(redis-server --version)"

if ! command -v node >/dev/null 2>&1; then
  echo "node is missing; installing it from Debian's packages (the HTTP caching suite runs on it)" >&2
  if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq nodejs npm
fi

# Arguments go to `cargo test` (a filter, say); the conformance suite then
# does not run.
stages=2
[ $# -eq 0 ] || stages=1
started=$SECONDS
echo "== stage 1/$stages: cargo test --workspace --all-features (builds everything once; a few minutes)"
cargo test --workspace --all-features "$@"
echo "== stage 1/$stages took $((SECONDS - started))s"
if [ $# -eq 0 ]; then
  suite_started=$SECONDS
  echo "== stage 2/2: the HTTP caching conformance suite against larder-http's reverse proxy (scripts/cache-tests.sh; about 1 minute)"
  ./scripts/cache-tests.sh
  echo "== stage 2/2 took $((SECONDS - suite_started))s"
fi
echo "== all tests passed in $((SECONDS - started))s"
