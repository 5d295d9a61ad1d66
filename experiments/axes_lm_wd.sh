#!/bin/bash
# lm (mup, 2 blocks, context 64 bytes, grammar_text; AdamW, cosine to 0 with 5% warm-up,
# LR 0.016 fixed: mup transfers it across width): the optimal coupled weight decay from
# width 64 to 512 (and 128), training loss over the last 10% of steps (single epoch: 800
# steps x 2 windows = 102k of the 1M training bytes, so it is a held-out loss).
# Argument: completep | constant (--weight_decay_width, coupled mode) | pilot (widths 64 and
# 128, completep, a x3 grid: it found the range and gives the width-128 point).
# The loss is flat below a cliff (decay ~0.1 at width 64), so the argmin is noise and often
# on an edge; `constant` runs through experiments/transfer_error_nowiden.py (the same CLI,
# grid never widened: a widened grid at width 256 did not fit the shared CPU), at width 256
# (512 did not fit beside the completep run).
# Batch 2 (not the LR rows' 4) at 800 steps: the same examples as 400 steps at batch 4,
# at the same cost per example at width 512, but past the lm's early plateau (400 -> 800
# steps at batch 4 took the loss from 1.84 to 0.99; see WORKSPACE "Other axes").
# Run at normal priority, one command per measurement (they may run side by side):
#   bash experiments/axes_lm_wd.sh completep > runs/axes/lm_wd_completep.log 2>&1
set -e
export PYTHONPATH=$PWD
PY=.venv/bin/python
LM_WD="--model=lm --rule=mup --optimizer=adamw --depths=2 --seeds=2 --steps=800 --batch_size=2 \
  --schedule=cosine --warmup=0.05 --lr=0.016 --tune=weight_decay --weight_decay_mode=coupled"
echo "== lm_wd_$1 $(date -u +%H:%M:%S) load: $(cut -d' ' -f1-3 /proc/loadavg)"
case "$1" in
pilot)
  $PY -m scaling transfer_error $LM_WD --widths=64,128 --weight_decay_width=completep \
    --weight_decays=0.01,0.03,0.1,0.3,1,3 --out=runs/axes/lm_wd_pilot ;;
completep)
  $PY -m scaling transfer_error $LM_WD --widths=64,512 --weight_decay_width=completep \
    --weight_decays=0.0078125,0.015625,0.03125,0.0625,0.125,0.25 --out=runs/axes/lm_wd_completep ;;
constant)
  $PY experiments/transfer_error_nowiden.py $LM_WD --widths=64,256 --weight_decay_width=constant \
    --weight_decays=0.015625,0.0625,0.125,0.25,0.5,1 --out=runs/axes/lm_wd_constant ;;
*) echo "unknown measurement $1" >&2; exit 2 ;;
esac
echo "== lm_wd_$1 done $(date -u +%H:%M:%S) load: $(cut -d' ' -f1-3 /proc/loadavg)"
