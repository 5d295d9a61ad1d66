#!/bin/bash
# lm (mup, width 64, 2 blocks, context 64 bytes; AdamW: coupled decay 0.1, cosine with 5%
# warm-up) on grammar_text: the optimal LR against training length and against batch size.
# Argument: steps | batch. 2 seeds, 7 LRs 2^(1/2) apart (3.9e-3 .. 3.1e-2, narrowed from a
# coarse pass and the partial run of the first version of this script); the grid widens
# itself past an edge optimum. Run at normal priority, one at a time:
#   bash experiments/axes_lm.sh steps > runs/axes/lm_steps.log 2>&1
# Timed before launching (13:20 UTC, load 13-17 on 2 cores): 16 members at batch 8 cost
# ~55 s of compile per point and ~0.6 s per step; at load ~20 the 100-step point at batch 8
# took ~7 min (~3 s a step), so batch 8 at 100..800 steps would not finish before the
# deadline: batch 4 (256 tokens a step) for the length axis, 1600 windows for the batch axis.
set -e
export PYTHONPATH=$PWD
PY=.venv/bin/python
COMMON="--model=lm --rule=mup --optimizer=adamw --weight_decay=0.1 --widths=64 --depths=2 --seeds=2 --schedule=cosine --warmup=0.05"
LRS="--lrs=0.003906,0.005524,0.007812,0.01105,0.01562,0.0221,0.03125"
echo "== lm_$1 $(date -u +%H:%M:%S) load: $(cut -d' ' -f1-3 /proc/loadavg)"
if [ "$1" = steps ]; then
  # batch 4 (256 tokens a step), 100 -> 800 steps (8x)
  $PY -m scaling transfer_error $COMMON $LRS --axis=steps --lengths=100,200,400,800 --batch_size=4 \
    --correction=horizon:0.3 --out=runs/axes/lm_steps
else
  # 1600 windows (102k tokens) seen at every batch size: 400 steps at batch 4 .. 50 at 32.
  # The LR grid is shifted up one octave (the length axis put batch 4 / 400 steps at 2.6e-2).
  # Corrections: Adam's sqrt(B), and with it the horizon factor with the exponent the length
  # axis measured (HBETA, e.g. -0.6: the optimum rose with length there), since at fixed
  # examples a larger batch also means fewer steps.
  LRS="--lrs=0.007812,0.01105,0.01562,0.0221,0.03125,0.04419,0.0625"
  $PY -m scaling transfer_error $COMMON $LRS --axis=batch_size --batch_sizes=4,8,16,32 --steps=400 \
    --correction=batch:sqrt,horizon:${HBETA:-0.3} --out=runs/axes/lm_batch
fi
echo "== lm_$1 done $(date -u +%H:%M:%S) load: $(cut -d' ' -f1-3 /proc/loadavg)"
