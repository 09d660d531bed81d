#!/bin/bash
# Issue 11's figures on a 100,000-user marketplace through the plain CLI (no bench harness):
# generate (realistic: fraud recency, label maturity, coordinated and fragmented rings, or the
# default generator with PRESET=default) -> bulk import -> train (K grouped folds, baselines on
# the same folds, truth reported but never fitted) -> backtest -> score.
# Usage: WORK=/tmp/learn100k bench/crossfit_real_run.sh generate import train backtest score
# Each step runs under nice and /usr/bin/time -v (output and .time files in $WORK/logs). Set
# RISKGRAPH_STATE_DIR and RISKGRAPH_NEO4J_PORT for your own server (import --bulk --force
# REPLACES that database). Every model setting is the default unless set in the environment.
set -euo pipefail
cd "$(dirname "$0")/.."
W=${WORK:-/tmp/learn100k}; B=$W/bundle; L=$W/logs; mkdir -p "$L"
USERS=${USERS:-100000}; SEED=${SEED:-}; PRESET=${PRESET:-realistic}
export PYTHONPATH=$PWD HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export RISKGRAPH_STATE_DIR=${RISKGRAPH_STATE_DIR:-/root/.local/state/rg-learn}
export RISKGRAPH_NEO4J_PORT=${RISKGRAPH_NEO4J_PORT:-7750}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} MKL_NUM_THREADS=${MKL_NUM_THREADS:-1}
export RISKGRAPH_EXPORT_DIR=$W/exports
step() {
  name=$1; shift; echo "== $name $(date -u +%T)"
  /usr/bin/time -v -o "$L/$name.time" nice -n 10 "$@" > "$L/$name.log" 2>&1
  echo "== $name done $(date -u +%T) $(grep -E 'Elapsed|Maximum resident' "$L/$name.time" | tr '\n' ' ')"
}
gen_flags=(--users "$USERS" --out "$B")
[ -n "$SEED" ] && gen_flags+=(--seed "$SEED")
[ "$PRESET" = realistic ] && gen_flags+=(--realistic)
for s in "$@"; do
  case $s in
    generate) step generate .venv/bin/riskgraph generate "${gen_flags[@]}" ;;
    import) step import .venv/bin/riskgraph import --bulk --force "$B" ;;
    train) step train .venv/bin/riskgraph train --compare --truth "$B/truth.csv" ;;
    backtest) step backtest .venv/bin/riskgraph backtest --truth "$B/truth.csv" ;;
    score) step score .venv/bin/riskgraph score ;;
    *) echo "unknown step $s" >&2; exit 2 ;;
  esac
done
