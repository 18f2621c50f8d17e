#!/usr/bin/env bash
# Run a command while the background training jobs (`--preset shapes|emoji`, or `--out runs/shapes-<res>` /
# `runs/emoji-<res>`) are paused with SIGSTOP, and resume them (SIGCONT) on any exit. A hard time limit caps the pause.
#   benchmarks/paused.sh SECONDS command [args...]
# Only those jobs are paused (not other `dalle train` processes, e.g. a test's torchrun).
set -u
limit=$1
shift
pids=$(pgrep -f -- "-m dalle train .*(--out runs/(shapes|emoji)-[0-9]+( |$)|--preset (shapes|emoji)( |$))" | tr '\n' ' ')
resume() {
  if [ -n "$pids" ]; then
    kill -CONT $pids 2>/dev/null
    echo "training jobs after resume (pid stat): $(ps -o pid=,stat= -p $pids | tr '\n' ' ')" >&2
  fi
}
trap resume EXIT INT TERM
start=$(date +%s)
if [ -n "$pids" ]; then
  kill -STOP $pids
  echo "paused training jobs: $pids" >&2
fi
timeout --kill-after=5 "$limit" "$@"
rc=$?
echo "pause lasted $(( $(date +%s) - start )) s; command exit $rc" >&2
exit $rc
