#!/usr/bin/env bash
# `make dev`: the simulator (--live), the scoring endpoint front and `dagster dev`, stopped together.
# Ctrl-C (SIGINT to the process group) or SIGTERM: everything is asked to stop, and whatever still runs
# after STOP_GRACE_SECONDS (default 7) is killed, so that nothing of it is left after 10 s. `dagster dev`
# alone takes ~20 s to shut down here, and run workers it launched while stopping would keep running.
# A run killed that way is marked failed by the run monitoring of deploy/local/dagster.yaml, and the
# sales sensor then loads its days again.
set -uo pipefail
BIN=${BIN:-.venv/bin}
LIVE_INTERVAL=${LIVE_INTERVAL:-60}
SERVE_PORT=${SERVE_PORT:-8765}
UI_PORT=${UI_PORT:-3000}
STOP_GRACE_SECONDS=${STOP_GRACE_SECONDS:-7}

stop() {
  trap '' INT TERM          # this shell keeps running the clean-up whatever arrives now
  trap - EXIT
  kill -INT 0 2>/dev/null   # the whole process group (a terminal's Ctrl-C has already sent it)
  local deadline=$((SECONDS + STOP_GRACE_SECONDS))
  while [ -n "$(jobs -pr)" ] && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.25; done
  kill -KILL 0              # run workers and anything else still in the group, this shell included
}
trap stop INT TERM EXIT

"$BIN/globolatte" simulate --live --interval "$LIVE_INTERVAL" &
"$BIN/globolatte" serve --wait --port "$SERVE_PORT" &
"$BIN/dagster" dev -h 127.0.0.1 -p "$UI_PORT" -w workspace.yaml &
wait -n  # a trapped signal interrupts the wait at once (a foreground child would delay the trap)
