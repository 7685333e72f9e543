#!/usr/bin/env bash
# `rokd ARGS` (or `python -m MODULE ARGS` when the first argument is -m) for the mini re-run: in its frozen
# worktree ../run-rerun (beside this checkout of main), with the re-run's environment: this checkout's artifacts,
# results outside the repository (../rerun-results: nothing partial lands in results/mini/), one thread per job,
# jemalloc keeping freed pages where installed (0.74x the step time; book: "Memory").
main=$(cd "$(dirname "$0")/../.." && pwd)
root=$(dirname "$main")
cd "$root/run-rerun" || exit 1
export PYTHONPATH=$PWD ROKD_ARTIFACTS_DIR=$main/artifacts ROKD_RESULTS_DIR=${ROKD_RESULTS_DIR:-$root/rerun-results} \
  ROKD_DATA_DIR=${ROKD_DATA_DIR:-$root/shared/data} ROKD_THREADS=${ROKD_THREADS:-1} TOKENIZERS_PARALLELISM=false
jemalloc=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2
[ -e $jemalloc ] && export LD_PRELOAD=$jemalloc MALLOC_CONF=dirty_decay_ms:-1,muzzy_decay_ms:-1
[ "${1:-}" = -m ] && exec "$main/.venv/bin/python" "$@"
exec "$main/.venv/bin/python" -m rokd.cli "$@"
