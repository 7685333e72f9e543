#!/usr/bin/env bash
# The mini re-run's last sitting (issue 17), once both queue.sh logs end with "queue done":
#   1. the re-run's worktree (../run-rerun, branch mini-rerun) takes main's code. Its branch differs from main
#      by rokd/profiles/mini.yaml alone and the pipeline's step keys hash the profile, so every finished run
#      stays finished, and the chapters are rendered by main's report and statistics (each run.json keeps the
#      commit that trained it; the pipeline record names the commit that rendered the chapters);
#   2. `rokd pipeline --profile mini`, one job on both cores (ROKD_THREADS=2): every chapter, finding the runs
#      done (anything unfinished runs there);
#   3. publish.sh (it refuses unless the acceptance bar passes, and commits nothing).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
main=$(cd "$here/../.." && pwd)
worktree=$(dirname "$main")/run-rerun
fail() { echo "finish.sh: $*" >&2; exit 1; }

[ -e "$(dirname "$main")/scratch/STOP" ] && fail "../scratch/STOP exists: remove it (it stops the pipeline's runs)"
git -C "$main" diff --quiet HEAD -- rokd notebooks || fail "main has uncommitted changes under rokd/ or notebooks/: commit them first"
git -C "$worktree" diff --quiet HEAD || fail "$worktree has uncommitted changes"
git -C "$worktree" merge --no-edit main
cmp -s "$worktree/rokd/profiles/mini.yaml" "$here/profile.yaml" \
  || fail "$worktree/rokd/profiles/mini.yaml is not results/mini-rerun/profile.yaml: the step keys would change"
ROKD_THREADS=2 "$here/rokd.sh" pipeline --profile mini
"$here/publish.sh"
