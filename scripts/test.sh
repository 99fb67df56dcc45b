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

# Arguments go to `cargo test` (a filter, say) as one stage; without any,
# three stages, each announced with what it does and how long it takes.
started=$SECONDS
stage() {
  local name=$1
  shift
  local at=$SECONDS
  echo "== $name"
  "$@"
  echo "== took $((SECONDS - at))s: $name"
}

if [ $# -gt 0 ]; then
  # No --workspace here: with it, cargo ignores `-p` and tests everything.
  stage "cargo test --all-features $*" cargo test --all-features "$@"
else
  stage "stage 1/3: cargo test --workspace --all-features, but the compile-error tests (one build of everything; a few minutes)" \
    cargo test --workspace --all-features -- --skip cached_attribute_ui
  stage "stage 2/3: the compile-error (trybuild) tests of #[larder::cached] (trybuild builds the dependency tree once more in target/tests; 2-5 minutes, quiet meanwhile)" \
    cargo test -p larder --all-features --test macros_ui
  stage "stage 3/3: the HTTP caching conformance suite against larder-http's reverse proxy (scripts/cache-tests.sh; about 2 minutes)" \
    ./scripts/cache-tests.sh
fi
echo "== all tests passed in $((SECONDS - started))s"
