#!/usr/bin/env bash
# Reproduce the bundled starter model (models/starter_indoor.onnx) on a CPU, as
# models/README.md describes: real sample folders split by scene, synthetic frames rendered
# once, recipes A (frozen, then fine-tuned), B (A + the real NYU training scenes) and C
# (relative, scale-invariant loss), the classic-room comparison, evaluation on the held-out
# real scenes beside the floors, export, int8 quantization, the CPU benchmark and pictures.
#
#   apt-get install -y mate-backgrounds ukui-wallpapers   # photo textures (GPL-2+ / CC-BY-SA)
#   scripts/models/train_starter.sh            # about 1 h of one CPU core
#
# STAGES picks a subset, e.g. STAGES="eval export" scripts/models/train_starter.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
STAGES=${STAGES:-"data a b c classic eval export"}
NICE="nice -n 10"
TEXTURES=/usr/share/backgrounds

has() { [[ " $STAGES " == *" $1 "* ]]; }

if has data; then
  $PY scripts/data/real_split.py
  $NICE $PY scripts/data/render_synthetic.py --out runs/synthetic_robot_s1 --count 768 --seed 1 \
    --style robot --textures "$TEXTURES"
  $NICE $PY scripts/data/render_synthetic.py --out runs/synthetic_classic_s1 --count 768 --seed 1 \
    --style classic
fi
if has a; then
  $NICE $PY training/train.py --config training/configs/starter_a_frozen.yaml --no-resume
  $NICE $PY training/train.py --config training/configs/starter_a_finetune.yaml --no-resume
fi
if has b; then
  $NICE $PY training/train.py --config training/configs/starter_b_real.yaml --no-resume
fi
if has c; then
  $NICE $PY training/train.py --config training/configs/starter_c_relative.yaml --no-resume
fi
if has classic; then
  $NICE $PY training/train.py --config training/configs/starter_a_frozen.yaml --no-resume \
    --set data.root=runs/synthetic_classic_s1 --output-dir runs/starter_a_frozen_classic
fi
if has eval; then
  $NICE $PY scripts/eval/eval_real.py A_frozen_classic=runs/starter_a_frozen_classic/last.pt \
    A_frozen=runs/starter_a_frozen/last.pt A=runs/starter_a_finetune/last.pt \
    B=runs/starter_b_real/last.pt C=runs/starter_c_relative/last.pt@ground_plane \
    --sets nyu_test nyu_all redwood tum kitti --json runs/starter_eval.json
fi
if has export; then
  $PY training/export_onnx.py --checkpoint runs/starter_b_real/last.pt \
    --output models/starter_indoor.onnx
  $PY scripts/models/quantize_int8.py --model models/starter_indoor.onnx \
    --output runs/starter_indoor_int8.onnx
  $NICE $PY scripts/eval/eval_real.py B_onnx=models/starter_indoor.onnx \
    B_int8=runs/starter_indoor_int8.onnx --no-floors --json runs/starter_eval_onnx.json
  for model in models/starter_indoor.onnx runs/starter_indoor_int8.onnx; do
    $PY -m mono_depth_ros.tools.depth_bench --model "$model" --backends onnxruntime \
      --threads 2 --iterations 200 --output-dir "runs/bench_$(basename "$model" .onnx)"
  done
  $PY scripts/models/model_pictures.py --model models/starter_indoor.onnx \
    --output docs/images/starter_indoor.png
fi
