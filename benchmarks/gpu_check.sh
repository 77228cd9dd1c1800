#!/usr/bin/env bash
# The GPU check of issue 15 in one call: every default variant's train, sample and evaluate
# through the genlab CLI on CUDA (tracking off), the toys, bit-exact determinism and resume on
# CUDA, and benchmarks/gpu.py. Logs and a summary go to $OUT (the device tool's output folder;
# ./gpu_check_out otherwise). On the device machine (see its README), after its prepare step:
#   bash .devicekit/run.sh 'bash benchmarks/gpu_check.sh'
# Settings (environment): DEVICE (cuda), STEPS (200: steps per variant; empty = the defaults),
# VARIANTS (all defaults), TOYS (all four), BENCH (1: run benchmarks/gpu.py), PY (python3).
set -u
OUT=${OUT:-$PWD/gpu_check_out}
DEVICE=${DEVICE:-cuda}
STEPS=${STEPS-200}
BENCH=${BENCH:-1}
PY=${PY:-python3}
mkdir -p "$OUT"
LOG="$OUT/log"
SUMMARY="$OUT/summary.tsv"
export MLFLOW_DISABLE_TELEMETRY=true DVC_NO_ANALYTICS=1 PYTHONPATH="$PWD/src:${PYTHONPATH:-}"
G() { $PY -m genlab.cli -S tracking.enabled=false -S device="$DEVICE" "$@"; }
VARIANTS=${VARIANTS:-$($PY -c "import yaml; print(' '.join(yaml.safe_load(open('params.yaml'))['variants']))")}
DATASETS=$($PY -c "
import yaml; p = yaml.safe_load(open('params.yaml')); v = set('$VARIANTS'.split())
print(' '.join(sorted({p['variants'][n]['dataset'] for n in v})))")

stage() {  # stage NAME CMD...: run, time, record ok/FAIL with the last error line
    local name=$1; shift
    local t0=$(date +%s.%N)
    if "$@" >>"$LOG" 2>&1; then status=ok; else status=FAIL; fi
    local dt=$(echo "$(date +%s.%N) - $t0" | bc)
    printf '%s\t%s\t%.1f\n' "$name" "$status" "$dt" | tee -a "$SUMMARY"
}

echo "$(date -u) device=$DEVICE steps=${STEPS:-default}" | tee "$LOG"
$PY -c "import torch; print(torch.__version__, torch.cuda.is_available() and torch.cuda.get_device_name())" | tee -a "$LOG"
printf 'stage\tstatus\tseconds\n' >"$SUMMARY"
t_all=$(date +%s)
for d in $DATASETS; do stage "prepare $d" G prepare "$d"; done
for d in $DATASETS; do stage "fit-evaluator $d" G fit-evaluator "$d"; done
scaled() {  # -S overrides for variant $1 at $STEPS steps, its phase lengths scaled alike
    $PY - "$1" "$STEPS" <<'EOF'
import sys

import yaml

from genlab.config import load_params

name, steps = sys.argv[1], int(sys.argv[2])
cfg = load_params("params.yaml").variant(name).model_dump()
given = yaml.safe_load(open("params.yaml"))["variants"][name]  # the keys the entry sets
print(f"-S\nvariants.{name}.steps={steps}")
for key in ("prior_steps", "disc_start", "pretrain_steps", "phase_steps", "encoder_steps"):
    if key in given and isinstance(cfg[key], int) and cfg[key] > 0:
        print(f"-S\nvariants.{name}.{key}={max(1, cfg[key] * steps // cfg['steps'])}")
EOF
}
for v in $VARIANTS; do
    steps=()
    [ -n "$STEPS" ] && mapfile -t steps < <(scaled "$v")
    stage "train $v" G "${steps[@]}" train "$v"
    stage "sample $v" G "${steps[@]}" sample "$v"
    stage "evaluate $v" G "${steps[@]}" evaluate "$v"
done
for t in ${TOYS-dirac parallel-lines fgan-gaussian modes2d}; do stage "toy $t" G toy "$t"; done
echo "pipeline seconds: $(( $(date +%s) - t_all ))" | tee -a "$SUMMARY"

# determinism and exact resume on the device: dcgan_ns twice for 100 steps, and 50 + 50
det() {
    local dir=$OUT/det_$1; shift
    G -S variants.dcgan_ns.steps="$1" -S variants.dcgan_ns.checkpoint_every=50 train dcgan_ns "${@:2}" >>"$LOG" 2>&1
    mkdir -p "$dir" && cp models/dcgan_ns/state.pt "$dir/"
}
det a 100 && det b 100 && G -S variants.dcgan_ns.steps=50 train dcgan_ns >>"$LOG" 2>&1 \
    && det c 100 --resume
$PY - "$OUT" <<'EOF' | tee -a "$SUMMARY"
import sys

import torch

out = sys.argv[1]
nets = {k: torch.load(f"{out}/det_{k}/state.pt", weights_only=True)["nets"] for k in "abc"}
for other, what in (("b", "rerun"), ("c", "50 + 50 with --resume")):
    same = all(torch.equal(t, nets[other][m][p]) for m in nets["a"] for p, t in nets["a"][m].items())
    print(f"determinism {what}\t{'identical' if same else 'DIFFERENT'}")
EOF
if [ "$BENCH" = 1 ]; then
    $PY benchmarks/gpu.py --device "$DEVICE" --steps 200 2>&1 | tee "$OUT/bench.txt"
    $PY benchmarks/gpu.py --device "$DEVICE" --data digits --precision fp32 --steps 200 \
        --compile default reduce-overhead 2>&1 | tee -a "$OUT/bench.txt"
fi
