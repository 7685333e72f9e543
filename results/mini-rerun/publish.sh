#!/usr/bin/env bash
# Publish the finished mini re-run (issue 17), from this checkout of main:
#   - the first run kept as results/mini-v1/ for its lesson (its scores.csv, the profile it ran, the corpus size);
#   - the re-run's results (../rerun-results/mini, after `rokd.sh pipeline --profile mini`) become results/mini/;
#   - profile.yaml becomes rokd/profiles/mini.yaml byte for byte (the pipeline's step keys hash the profile);
#   - the golden tables of the published chapters are regenerated (review their diff before committing).
# It changes nothing unless the acceptance bar passes, the pipeline's notebooks are there and results/mini is
# unmodified; it commits nothing.
set -euo pipefail
main=$(cd "$(dirname "$0")/../.." && pwd)
cd "$main"
rerun=${ROKD_RESULTS_DIR:-$(dirname "$main")/rerun-results}/mini
fail() { echo "publish.sh: $*" >&2; exit 1; }

[ -e results/mini-v1 ] && fail "results/mini-v1 exists: the re-run looks published already"
[ -f "$rerun/scores.csv" ] || fail "$rerun/scores.csv missing: run the queues first (README.md here)"
[ -d "$rerun/notebooks" ] || fail "$rerun/notebooks missing: run 'results/mini-rerun/rokd.sh pipeline --profile mini' first"
git diff --quiet HEAD -- results/mini rokd/profiles/mini.yaml || fail "results/mini or rokd/profiles/mini.yaml has uncommitted changes"
# this checkout's `rokd report`: it also refuses a task whose runs come from different fine-tuning protocols
.venv/bin/python -m rokd.cli report --profile mini --results "$rerun" --section acceptance --check \
  || fail "the acceptance bar is not passed (or the runs mix protocols): issue 17 says scale up the teachers, not publish"

mkdir -p results/mini-v1
git show HEAD:results/mini/scores.csv > results/mini-v1/scores.csv
git show HEAD:rokd/profiles/mini.yaml > results/mini-v1/profile.yaml
# The corpus is the data step's, not the profile's: the one the first run's teachers saw too.
.venv/bin/python - <<'EOF'
import json
lines = json.load(open("artifacts/mini/corpus/stats.json"))["train_lines"]
open("results/mini-v1/corpus_stats.json", "w").write(json.dumps({"train_lines": lines}, indent=2) + "\n")
EOF

git rm -r -q results/mini
mkdir -p results/mini
cp -r "$rerun"/. results/mini/
rm -f results/mini/*.lock
cp results/mini-rerun/profile.yaml rokd/profiles/mini.yaml
ROKD_UPDATE_GOLDEN=1 .venv/bin/python -m pytest -q -m published tests/test_published_tables.py
.venv/bin/python -m rokd.cli notebooks sync
echo "published: review 'git status' and 'git diff tests/golden', re-render the book, then commit"
