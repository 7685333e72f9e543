#!/usr/bin/env bash
# Keep one teacher build of the mini re-run going until its folder holds the finished build or the stop file
# exists: `nohup results/mini-rerun/build.sh bert-base-ro > ../logs/build-bert-base-ro.log 2>&1 &` (one per core).
# A build whose resident memory passes LIMIT_MB is stopped with SIGTERM (it saves a checkpoint of its step) and
# resumed: in bf16 a build's memory still grows with oneDNN's cache capped (README: "Memory"; cause not found).
set -u
key=${1:?usage: build.sh bert-base-ro|robert-base}
here=$(cd "$(dirname "$0")" && pwd)
ROKD=${ROKD:-$here/rokd.sh}
ARTIFACTS=${ROKD_ARTIFACTS_DIR:-$here/../../artifacts}
STOP=${STOP:-$here/../../../scratch/STOP}
LIMIT_MB=${LIMIT_MB:-10500}
steps=$(awk '/^teachers:/{d=1; next} /^[a-z]/{d=0} d && /^  steps:/{print $2}' "$here/profile.yaml")
while [ ! -e "$STOP" ]; do
  grep -q "\"steps\": $steps" "$ARTIFACTS/mini/teachers/$key/teacher_config.json" 2>/dev/null && {
    echo "$(date -u +%FT%TZ) $key built ($steps steps)"; exit 0; }
  "$ROKD" teachers build --profile mini --key "$key" --wait &
  pid=$!; echo "$(date -u +%FT%TZ) $key started pid $pid"
  while kill -0 $pid 2>/dev/null; do
    sleep 15
    rss=$(awk '/VmRSS/{print int($2 / 1024)}' /proc/$pid/status 2>/dev/null || echo 0)
    if [ "${rss:-0}" -gt "$LIMIT_MB" ] || [ -e "$STOP" ]; then
      echo "$(date -u +%FT%TZ) $key rss ${rss} MB: SIGTERM $pid"; kill -TERM $pid; wait $pid; break
    fi
  done
  wait $pid 2>/dev/null; echo "$(date -u +%FT%TZ) $key exited rc $?"; sleep 5
done
