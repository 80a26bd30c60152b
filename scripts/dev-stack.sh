#!/usr/bin/env bash
# Brings up the whole Fluxus stack on a local Tempo dev node: anvil (--network tempo), Redis
# (the one on 127.0.0.1:6379, started if none answers), fluxus-api and fluxus-worker, with dev
# defaults (dev account 0 as sender, a fresh API key). Prints ready-to-paste curl commands and
# runs until Ctrl-C, then stops what it started.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

RPC_PORT="${FLUXUS_DEV_RPC_PORT:-8545}"
API_ADDR="${FLUXUS_LISTEN:-127.0.0.1:8080}"
# The dev chain starts empty every time, so the dev stack keeps its state in a Redis database of
# its own (index 9) and empties it at start; a REDIS_URL you set is used as is, never emptied.
DEV_REDIS_URL="redis://127.0.0.1:6379/9"
REDIS_URL="${REDIS_URL:-$DEV_REDIS_URL}"
STATE_DIR="$root/.stack"
DEV_SENDER_KEY="0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
mkdir -p "$STATE_DIR"

pids=()
stopped=""
cleanup() {
  [ -n "$stopped" ] && return
  stopped=1
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "dev-stack: stopped everything it started."
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Waits until a check passes; gives up at the deadline or as soon as a started process died.
wait_for() { # description, deadline in seconds, command...
  local what="$1" secs="$2"; shift 2
  local end=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    for pid in "${pids[@]}"; do
      if ! kill -0 "$pid" 2>/dev/null; then
        echo "dev-stack: a process exited while waiting for $what; see $STATE_DIR/*.log" >&2
        exit 1
      fi
    done
    if [ $SECONDS -ge $end ]; then
      echo "dev-stack: $what did not come up; see $STATE_DIR/*.log" >&2
      exit 1
    fi
    sleep 0.2
  done
}

port_in_use() { # host:port
  (exec 3<>"/dev/tcp/${1%:*}/${1##*:}") 2>/dev/null
}

for addr in "127.0.0.1:$RPC_PORT" "$API_ADDR"; do
  if port_in_use "$addr"; then
    echo "dev-stack: $addr is already in use; set FLUXUS_DEV_RPC_PORT (anvil) or" \
      "FLUXUS_LISTEN (API) to free ones" >&2
    exit 1
  fi
done

echo "==> installing the pinned Tempo dev node (anvil)"
anvil="$(bash scripts/install-anvil.sh)"

echo "==> building fluxus-api and fluxus-worker"
cargo build --bins -p fluxus-api -p fluxus-worker
bin_dir="${CARGO_TARGET_DIR:-$root/target}/debug"

if [[ "$REDIS_URL" == "redis://127.0.0.1:6379"* ]] && ! redis-cli -p 6379 ping >/dev/null 2>&1; then
  echo "==> starting redis on 127.0.0.1:6379 (append-only file in $STATE_DIR)"
  redis-server --port 6379 --bind 127.0.0.1 --appendonly yes --dir "$STATE_DIR" \
    >"$STATE_DIR/redis.log" 2>&1 &
  pids+=($!)
  wait_for redis 20 redis-cli -p 6379 ping
fi

if [ "$REDIS_URL" = "$DEV_REDIS_URL" ]; then
  redis-cli -n 9 flushdb >/dev/null
fi

echo "==> starting anvil --network tempo on 127.0.0.1:$RPC_PORT"
"$anvil" --network tempo --chain-id 42431 --host 127.0.0.1 --port "$RPC_PORT" \
  >"$STATE_DIR/anvil.log" 2>&1 &
pids+=($!)
rpc_up() {
  curl -sf --max-time 2 -H 'content-type: application/json' \
    -d '{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}' "http://127.0.0.1:$RPC_PORT"
}
wait_for anvil 30 rpc_up

api_key="dev-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
export REDIS_URL FLUXUS_API_KEY="$api_key" FLUXUS_LISTEN="$API_ADDR"
export NEXT_PUBLIC_TEMPO_RPC_URL="http://127.0.0.1:$RPC_PORT"
export FLUXUS_SENDER_PRIVATE_KEY="${FLUXUS_SENDER_PRIVATE_KEY:-$DEV_SENDER_KEY}"
export RUST_LOG="${RUST_LOG:-info}"

echo "==> starting fluxus-api on $API_ADDR and fluxus-worker"
"$bin_dir/fluxus-api" >"$STATE_DIR/api.log" 2>&1 &
pids+=($!)
"$bin_dir/fluxus-worker" >"$STATE_DIR/worker.log" 2>&1 &
pids+=($!)
wait_for fluxus-api 60 curl -sf --max-time 2 "http://$API_ADDR/readyz"

base="http://$API_ADDR"
to="0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
cat <<MSG

Fluxus is running on a local Tempo dev node.
  API        $base   (docs UI: $base/docs, spec: $base/openapi.json)
  API key    $api_key
  sender     0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266 (dev account 0)
  logs       $STATE_DIR/{anvil,api,worker}.log

Paste these:

  export FLUXUS_API_KEY=$api_key

  # send 1.25 pathUSD with a memo (answers 202 with the job)
  curl -s -X POST $base/api/v1/send \\
    -H "Authorization: Bearer \$FLUXUS_API_KEY" -H 'Content-Type: application/json' \\
    -H "Idempotency-Key: demo-1" \\
    -d '{"to":"$to","amount":"1.25","memo":"INV-1"}'

  # the job's status (use the id from the answer above)
  curl -s $base/api/v1/jobs/<id> -H "Authorization: Bearer \$FLUXUS_API_KEY"

  curl -s $base/api/v1/balance/$to
  curl -s $base/api/v1/history/$to
  curl -s $base/metrics | grep fluxus_

Ctrl-C stops the stack.
MSG

# The stack runs as a whole: if any of its processes exits, everything is stopped.
wait -n "${pids[@]}" || true
echo "dev-stack: a process of the stack exited; stopping the rest (see $STATE_DIR/*.log)" >&2
