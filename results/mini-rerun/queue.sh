#!/usr/bin/env bash
# One CPU core's queue of the mini re-run after the teachers: run it twice, one per core, e.g.
#   nohup results/mini-rerun/queue.sh cased   > ../logs/queue-cased.log 2>&1 &
#   nohup results/mini-rerun/queue.sh uncased > ../logs/queue-uncased.log 2>&1 &
# Each waits for its teacher's build, fine-tunes the gate's models (the teachers and control-random-init, every
# task x seed), checks the acceptance bar (`rokd report --check`) and only then distils and fine-tunes the
# students. Runs whose outputs exist with the same config are skipped, and two queues on the same run wait for
# each other (--wait), so the queues share the cased teacher's runs from opposite ends and can be restarted at
# any time. `touch $STOP` stops a queue between two runs (a distillation is sent SIGTERM: it saves a checkpoint).
#
# ROKD (default: rokd.sh beside this file) runs `rokd` in the re-run's frozen worktree with its environment.
set -u
side=${1:?usage: queue.sh cased|uncased}
ROKD=${ROKD:-$(dirname "$0")/rokd.sh}
ARTIFACTS=${ROKD_ARTIFACTS_DIR:-$(dirname "$0")/../../artifacts}
STOP=${STOP:-$(dirname "$0")/../../../scratch/STOP}
TASKS=(upos xpos ner sapn sar di sts)
SEEDS=(1 2 3)
REVERSED=(sts di sar sapn ner xpos upos)

log() { echo "$(date -u +%FT%TZ) [$side] $*"; }
stopped() { [ -e "$STOP" ] && { log "stop file $STOP: stopping"; exit 0; }; }

TEACHER_STEPS=$(awk '/^teachers:/{d=1; next} /^[a-z]/{d=0} d && /^  steps:/{print $2}' "$(dirname "$0")/profile.yaml")

wait_teacher() {  # the teacher folder holds the finished build (build.sh)
  until grep -q "\"steps\": $TEACHER_STEPS" "$ARTIFACTS/mini/teachers/$1/teacher_config.json" 2>/dev/null; do
    stopped; sleep 60
  done
}

finetune() {  # finetune MODEL TASK...: every seed of every task, in one process (torch and the data load once)
  local model=$1 args=() t s; shift
  for t in "$@"; do args+=(--task "$t"); done
  for s in "${SEEDS[@]}"; do args+=(--seed "$s"); done
  stoppable evaluate --profile mini --model "$model" "${args[@]}" --wait || log "FAILED: evaluate $model (finished runs are kept)"
}

stoppable() {  # ROKD ARGS..., sent SIGTERM on the stop file (training saves a checkpoint of its step); its status
  stopped
  log "$*"
  "$ROKD" "$@" &
  local pid=$!
  while kill -0 $pid 2>/dev/null; do
    [ -e "$STOP" ] && { kill -TERM $pid; wait $pid; stopped; }
    sleep 5
  done
  wait $pid
}

distil() { stoppable distill --profile mini --student "$1" --wait || { log "FAILED: distil $1"; exit 1; }; }

gate() {  # the acceptance bar, after both teachers' and the control's fine-tunes: those the other queue has not
  # done yet are taken from the other end of its order (reversed), so that the two queues meet instead of queueing
  for model in bert-base-ro robert-base control-random-init; do finetune "$model" "${REVERSED[@]}"; done
  "$ROKD" -m rokd.tasks.baselines --profile mini || log "FAILED: baselines"  # seconds; skipped when done
  "$ROKD" report --profile mini --section gains --section acceptance --check || {
    log "acceptance bar not passed: scale up the teachers before anything else (issue 17)"
    exit 1
  }
}

if [ "$side" = cased ]; then
  wait_teacher bert-base-ro
  finetune control-random-init "${TASKS[@]}"
  finetune bert-base-ro "${TASKS[@]}"
  wait_teacher robert-base
  gate
  students=(distil-bert-base-ro distil-bert-base-ro@d2)
  finetune_first=control-init-only
  strategies=(span-map uld gold-hybrid hidden-only)
else
  wait_teacher robert-base
  finetune robert-base "${TASKS[@]}"
  wait_teacher bert-base-ro
  finetune bert-base-ro "${REVERSED[@]}"
  gate
  students=(distil-robert-base distilmulti-bert-base-ro distilmulti-bert-base-ro@d2)
  finetune_first=
  strategies=(projection min-edit cased-only)
fi
[ -n "$finetune_first" ] && finetune "$finetune_first" "${TASKS[@]}"
for s in "${students[@]}"; do distil "$s"; done
for s in "${students[@]}"; do finetune "$s" "${TASKS[@]}"; done
# The strategy study (chapter 06), half of the strategies per core, at the pipeline's settings (a third of the
# distillation steps, seeds 1 2); the chapter's own run then finds every piece done and writes strategies.csv whole.
steps=$(awk '/^distill:/{d=1; next} /^[a-z]/{d=0} d && /^  steps:/{print int($2 / 3)}' "$(dirname "$0")/profile.yaml")
for st in "${strategies[@]}"; do
  stoppable -m rokd.strategy_study --profile mini --strategies "$st" --seeds 1 2 --steps "$steps" || log "FAILED: study $st"
done
log "queue done: next, rokd pipeline --profile mini (one job, both cores: ROKD_THREADS=2)"
