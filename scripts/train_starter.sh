#!/usr/bin/env bash
# Reproduce the bundled starter model (models/starter_indoor.onnx) and its int8 copy on a
# CPU, as models/README.md describes: data folders, recipes A (frozen, then fine-tuned), B
# (A + the real NYU training scenes) and C (relative, scale-invariant loss), evaluation on
# the real test scenes beside the floors, export, quantization and the CPU benchmark.
#
#   apt-get install -y mate-backgrounds ukui-wallpapers   # photo textures (GPL-2+ / CC-BY-SA)
#   scripts/train_starter.sh            # about 1.5 h of one CPU core
#
# STAGES picks a subset, e.g. STAGES="eval export" scripts/train_starter.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
STAGES=${STAGES:-"data a b c eval export"}
NICE="nice -n 10"

has() { [[ " $STAGES " == *" $1 "* ]]; }

if has data; then
  $PY scripts/real_split.py
fi
if has a; then
  $NICE $PY training/train.py --config training/configs/starter_a_frozen.yaml
  $NICE $PY training/train.py --config training/configs/starter_a_finetune.yaml
fi
if has b; then
  $NICE $PY training/train.py --config training/configs/starter_b_real.yaml
fi
if has c; then
  $NICE $PY training/train.py --config training/configs/starter_c_relative.yaml
fi
if has eval; then
  $NICE $PY scripts/eval_real.py \
    A=runs/starter_a_finetune/best.pt B=runs/starter_b_real/last.pt \
    C=runs/starter_c_relative/last.pt --json runs/starter_eval.json
fi
if has export; then
  $PY training/export_onnx.py --checkpoint runs/starter_b_real/last.pt \
    --output models/starter_indoor.onnx
  $PY scripts/quantize_int8.py --model models/starter_indoor.onnx \
    --output runs/starter_indoor_int8.onnx
  $PY -m mono_depth_ros.tools.depth_bench --model models/starter_indoor.onnx \
    --backends onnxruntime --threads 2 --iterations 200 --output-dir runs/bench_fp32
  $PY -m mono_depth_ros.tools.depth_bench --model runs/starter_indoor_int8.onnx \
    --backends onnxruntime --threads 2 --iterations 200 --output-dir runs/bench_int8
fi
