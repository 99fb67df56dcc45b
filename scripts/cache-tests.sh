#!/usr/bin/env bash
# Runs the HTTP caching test suite (http-tests/cache-tests, vendored in
# third_party/cache-tests) against Larder's reverse-proxy example and
# summarises the results beside the suite's shipped results for other
# reverse proxies and CDNs.
#
#   scripts/cache-tests.sh            # the whole suite (a few minutes)
#   scripts/cache-tests.sh -i ID      # one test, with the suite's dump of
#                                     # every request and response
#
# Starts the suite's origin server and the example proxy on free ports on
# 127.0.0.1 (and stops exactly those two processes when it ends). Writes to
# ${CACHE_TESTS_OUT:-target/cache-tests}: larder.json (the suite's raw
# results), summary.md, summary.json, failures.txt (the required tests
# Larder does not pass) and the logs of the origin, the proxy and the client.
# Fails when Larder passes fewer required tests than the baseline in
# third_party/cache-tests-baseline.txt.
#
# Needs node (20.18.1 or newer) and npm; installs the suite's one
# dependency (undici, for the interim-response tests) from
# third_party/cache-tests/package-lock.json when it is missing.
#
# CACHE_TESTS_NO_PROXY=1 points the client straight at the origin (no cache
# in between; results in no-cache.json, baseline not checked): for checking
# this script and the suite themselves.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
suite=$root/third_party/cache-tests
baseline_file=$root/third_party/cache-tests-baseline.txt
start_timeout=${CACHE_TESTS_START_TIMEOUT:-30} # seconds for each server to come up

usage() {
  echo "usage: $0 [-i TEST_ID]" >&2
  echo "  -i TEST_ID  run one test with the suite's request/response dump" >&2
}

test_id=""
while getopts "hi:" opt; do
  case $opt in
    i) test_id=$OPTARG ;;
    h) usage; exit 0 ;;
    *) usage; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
if [ $# -ne 0 ]; then usage; exit 2; fi

no_proxy=${CACHE_TESTS_NO_PROXY:-}
if [ "$no_proxy" = 0 ]; then no_proxy=""; fi

out=${CACHE_TESTS_OUT:-target/cache-tests}
mkdir -p "$out"
out=$(cd "$out" && pwd)

command -v node >/dev/null 2>&1 || {
  echo "node is missing; the suite runs on Node.js (20.18.1 or newer)" >&2
  exit 1
}

if [ -n "$test_id" ]; then
  # cli.mjs fails with a bare TypeError on an id it does not know.
  (cd "$suite" && node --input-type=module -e "
    import tests from './tests/index.mjs'
    const id = process.argv[1]
    if (!tests.some(suite => suite.tests.some(test => test.id === id))) {
      console.error('no test with id ' + JSON.stringify(id) + ' in third_party/cache-tests/tests')
      process.exit(2)
    }" "$test_id")
fi

started=$SECONDS

# --- the suite's dependency: undici (only the interim-response tests use it)
if [ ! -f "$suite/node_modules/undici/package.json" ]; then
  echo "installing the suite's dependencies (npm ci in third_party/cache-tests)"
  if ! command -v npm >/dev/null 2>&1; then
    echo "WARNING: npm is missing; undici is not installed, the interim-response tests will fail" >&2
  elif ! (cd "$suite" && npm ci --no-audit --no-fund --loglevel=error); then
    echo "WARNING: npm ci failed; undici is not installed, the interim-response tests will fail" >&2
  fi
fi

# --- the proxy, built once (dev profile: shares `cargo test --workspace --all-features`)
proxy_bin=""
if [ -z "$no_proxy" ]; then
  cargo build -p larder-http --all-features --example reverse_proxy
  target_dir=$(cargo metadata --no-deps --format-version 1 |
    node -e 'let s = ""; process.stdin.on("data", d => { s += d }).on("end", () => console.log(JSON.parse(s).target_directory))')
  proxy_bin=$target_dir/debug/examples/reverse_proxy
  [ -x "$proxy_bin" ] || { echo "no proxy binary at $proxy_bin after the build" >&2; exit 1; }
fi
built=$SECONDS

# --- process handling: only what this script starts is stopped
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# wait_listening NAME PID LOG: waits for the "listening on http://HOST:PORT"
# line a server prints once bound, then for the port to accept a connection;
# prints the port.
wait_listening() {
  local name=$1 pid=$2 log=$3 deadline=$((SECONDS + start_timeout)) port=""
  while :; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "$name exited before it was listening; its log ($log):" >&2
      sed 's/^/    /' "$log" >&2
      return 1
    fi
    if [ -z "$port" ]; then
      port=$(sed -n 's|.*[Ll]istening on https\{0,1\}://[^ ]*:\([0-9][0-9]*\).*|\1|p' "$log" | head -n 1)
    fi
    if [ -n "$port" ] && (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return 0
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "$name is not listening after ${start_timeout}s; its log ($log):" >&2
      sed 's/^/    /' "$log" >&2
      return 1
    fi
    sleep 0.1
  done
}

# --- the suite's origin server. server.mjs takes its port from
# npm_config_port (0: the kernel picks a free one; the "Listening on" line
# says which) and calls listen(port) on every interface: the preamble makes
# that listen(port, '127.0.0.1') without touching the vendored file.
origin_log=$out/origin.log
: >"$origin_log"
(
  cd "$suite"
  export npm_config_protocol=http npm_config_port=0 npm_config_pidfile="$out/origin.pid"
  exec node --input-type=module -e "
    import net from 'node:net'
    const listen = net.Server.prototype.listen
    net.Server.prototype.listen = function (port, ...rest) {
      return rest.length === 0 && (typeof port === 'number' || typeof port === 'string')
        ? listen.call(this, Number(port), '127.0.0.1')
        : listen.call(this, port, ...rest)
    }
    await import('./test-engine/server/server.mjs')
  "
) >"$origin_log" 2>&1 &
pids+=($!)
origin_port=$(wait_listening "the origin server" "${pids[-1]}" "$origin_log")
origin=http://127.0.0.1:$origin_port
echo "origin server: $origin (log: $origin_log)"

# --- Larder's reverse proxy in front of it
if [ -z "$no_proxy" ]; then
  subject=larder
  proxy_log=$out/proxy.log
  : >"$proxy_log"
  "$proxy_bin" --listen 127.0.0.1:0 --upstream "$origin" >"$proxy_log" 2>&1 &
  pids+=($!)
  proxy_port=$(wait_listening "the reverse proxy" "${pids[-1]}" "$proxy_log")
  base=http://127.0.0.1:$proxy_port
  echo "reverse proxy: $base (log: $proxy_log)"
else
  subject=no-cache
  base=$origin
  echo "CACHE_TESTS_NO_PROXY: the client talks to the origin directly (no cache)"
fi

# --- one test, with the suite's dump
if [ -n "$test_id" ]; then
  status=0
  (cd "$suite" && npm_config_base=$base npm_config_id=$test_id node --no-warnings test-engine/cli.mjs) || status=$?
  echo
  echo "=== origin server log ($origin_log)"
  cat "$origin_log"
  if [ -z "$no_proxy" ]; then
    echo "=== proxy log ($proxy_log)"
    cat "$proxy_log"
  fi
  exit "$status"
fi

# --- the whole suite
results=$out/$subject.json
client_log=$out/client.log
echo "running the suite (370 tests, 25 at a time; pauses of 3s between some requests)..."
status=0
# cli.mjs runs every test only when its id is '' (npm_config_id ||
# npm_package_config_id, as `npm run` sets them from package.json): an empty
# npm_config_id alone falls through to an undefined npm_package_config_id.
(cd "$suite" && npm_config_base=$base npm_config_id= npm_package_config_id= node --no-warnings test-engine/cli.mjs) \
  >"$results.partial" 2>"$client_log" || status=$?
if [ "$status" -ne 0 ]; then
  echo "the suite's client failed (exit $status); its log ($client_log):" >&2
  sed 's/^/    /' "$client_log" >&2
  exit 1
fi
mv "$results.partial" "$results"
ran=$SECONDS
if [ -s "$client_log" ]; then
  echo "the client reported $(grep -c '^ERROR' "$client_log" || true) request errors (see $client_log)"
fi

if [ -z "$no_proxy" ]; then
  name=Larder
  version="$(sed -n 's/^version *= *"\(.*\)"/\1/p' Cargo.toml | head -n 1) $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
  if [ -n "$(git status --porcelain 2>/dev/null | head -n 1)" ]; then version="$version+dirty"; fi
else
  name="no cache"
  version="origin only"
fi
echo
node scripts/cache-tests-summary.mjs "$results" --name "$name" --version "$version" --out "$out"
passed=$(node -p 'require(process.argv[1]).subject.required_passed' "$out/summary.json")
echo
echo "results: $results; summary: $out/summary.md; failures: $out/failures.txt"
echo "took $((SECONDS - started))s (build $((built - started))s, suite $((ran - built))s)"

if [ -n "$no_proxy" ]; then
  echo "baseline not checked (CACHE_TESTS_NO_PROXY)"
  exit 0
fi
baseline=$(tr -d '[:space:]' <"$baseline_file")
case $baseline in
  '' | *[!0-9]*) echo "$baseline_file must hold one integer, not '$baseline'" >&2; exit 1 ;;
esac
if [ "$passed" -lt "$baseline" ]; then
  echo "FAIL: Larder passes $passed required tests, below the baseline of $baseline ($baseline_file)" >&2
  exit 1
fi
echo "Larder passes $passed required tests (baseline $baseline)"
if [ "$passed" -gt "$baseline" ]; then
  echo "above the baseline: raise it with  echo $passed > third_party/cache-tests-baseline.txt"
fi
