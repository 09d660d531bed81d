#!/bin/bash
# The real 100,000-user run behind docs/report.md (issue 15: report <= 60 s, page < 5 MB).
# Usage: WORK=/tmp/ops100k bench/report_real_run.sh generate import train score1 rings score2 report
# Each step runs under nice and /usr/bin/time -v (output and .time files in $WORK/logs). Set
# RISKGRAPH_STATE_DIR and RISKGRAPH_NEO4J_PORT for your own server (import --bulk --force
# REPLACES that database). Then: bench/report_bench.py --real for the warm, repeatable figures.
set -euo pipefail
cd "$(dirname "$0")/.."
W=${WORK:-/tmp/ops100k}; B=$W/bundle; L=$W/logs; mkdir -p "$L"
export PYTHONPATH=$PWD HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export RISKGRAPH_STATE_DIR=${RISKGRAPH_STATE_DIR:-/root/.local/state/rg-ops}
export RISKGRAPH_NEO4J_PORT=${RISKGRAPH_NEO4J_PORT:-7742}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
# Affordable on 2 shared cores; model quality is not what this run measures.
export RISKGRAPH_FOLDS=2 RISKGRAPH_EPOCHS=4 RISKGRAPH_PATIENCE=2 RISKGRAPH_ENCODE_INT8=true
export RISKGRAPH_EXPORT_DIR=$W/exports
step() {
  name=$1; shift; echo "== $name $(date -u +%T)"
  /usr/bin/time -v -o "$L/$name.time" nice -n 10 "$@" > "$L/$name.log" 2>&1
  echo "== $name done $(date -u +%T) $(grep -E 'Elapsed|Maximum resident' "$L/$name.time" | tr '\n' ' ')"
}
for s in "$@"; do
  case $s in
    generate) step generate .venv/bin/riskgraph generate --users 100000 --realistic --out "$B" ;;
    import) step import .venv/bin/riskgraph import --bulk --force "$B" ;;
    train) step train .venv/bin/riskgraph train --compare ;;
    score1 | score2) step "$s" .venv/bin/riskgraph score ;;
    rings | rings2) step "$s" .venv/bin/riskgraph rings --truth "$B/rings.csv" ;;
    report) step report .venv/bin/riskgraph report --out "$W/report.html" ;;
    *) echo "unknown step $s" >&2; exit 2 ;;
  esac
done
