#!/usr/bin/env bash
# The GPU machine check: one command, one log, one JSON.
#
#   bench/gpu_check.sh [--dry-run] [--out DIR] [--skip pytest,sync_check,cli,throughput] [--budget SECONDS]
#                      [--install pip|view] [--wheels DIR] [--keep-work]
#
# Run from anywhere; PY names the Python to use (default python3: on a GPU image, the one that has torch). It
# installs nothing into that Python: ffmpeg-python and imageio-ffmpeg come from the wheel folder (.whl, no
# internet needed) and v3s itself is built from the checkout, both into a temporary folder put first on
# PYTHONPATH; the image's torch is used as it is. Then it records the environment, makes a synthetic store with
# v3s-prep, runs the CUDA tests, checks the training step for host syncs, runs the commands end to end (pretrain,
# killed and continued, finetune, the evaluations) and the throughput benchmark (bench/gpu_train.py), within a
# --budget of 480 s on a GPU; --dry-run runs every stage on the CPU at tiny sizes (minutes on 2 cores).
#
# Writes DIR/gpu_check.log and DIR/gpu_check.json (DIR: --out, a new or empty folder; default out/gpu-check-<time>).
# Exit status 0 when every stage ran as it should (speed targets are reported, not failed on), 1 otherwise.
#
# The wheel folder, made where pip reaches PyPI (about 30 MB; the GPU image lacks these two and `future`):
#   python3 -m pip download --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 -d .whl ffmpeg-python imageio-ffmpeg
# docs/benchmarks.md ("The GPU machine check") says how to run it through a lent GPU machine.
set -uo pipefail

usage() { sed -n '2,/^set -uo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=${PY:-python3}
OUT=""
ARGS=()
while [ $# -gt 0 ]; do
    case $1 in
        -h|--help) usage; exit 0 ;;
        --out) [ $# -ge 2 ] || { echo "gpu_check: --out needs a folder" >&2; exit 2; }; OUT=$2; shift 2 ;;
        --out=*) OUT=${1#--out=}; shift ;;
        *) ARGS+=("$1"); shift ;;
    esac
done
[ -n "$OUT" ] || OUT=$REPO/out/gpu-check-$(date +%Y%m%d-%H%M%S)
if [ -e "$OUT" ] && { [ ! -d "$OUT" ] || [ -n "$(ls -A "$OUT")" ]; }; then
    echo "gpu_check: --out $OUT exists and is not an empty folder; give a new or empty folder (nothing was written)" >&2
    exit 2
fi
command -v "$PY" >/dev/null 2>&1 || { echo "gpu_check: no Python '$PY' (set PY to one that has torch)" >&2; exit 2; }
mkdir -p "$OUT" || exit 2

export PYTHONUNBUFFERED=1
"$PY" "$REPO/bench/gpu_check.py" --out "$OUT" ${ARGS[@]+"${ARGS[@]}"} 2>&1 | tee "$OUT/gpu_check.log"
exit "${PIPESTATUS[0]}"
