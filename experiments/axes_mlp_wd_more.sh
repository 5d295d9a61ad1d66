#!/bin/bash
# MLP (mup, Adam, width 64.., depth 3, MNIST-1D, batch 128), weight decay measurements beside
# experiments/axes_mlp_wd.sh (coupled decay across width). Argument:
#   both         LR x coupled weight decay, a 2-D grid, cosine with 5% warm-up, 250 -> 1000
#                steps (does the pair found on the short proxy carry to 4x the length?)
#   independent  independent decay (per step wd x s.wd, no LR factor) with Qiu et al.'s
#                1/width scaling (`inverse_width`), width 64 -> 512, LR fixed at 0.004, test
#                loss after 1000 steps (the coupled run's protocol; 2 seeds instead of 3)
# Run at normal priority, one at a time:
#   bash experiments/axes_mlp_wd_more.sh both > runs/axes/wd_both.log 2>&1
set -e
export PYTHONPATH=$PWD
PY=.venv/bin/python
echo "== wd_$1 $(date -u +%H:%M:%S) load: $(cut -d' ' -f1-3 /proc/loadavg)"
if [ "$1" = both ]; then
  $PY -m scaling transfer_error --model=mlp --rule=mup --optimizer=adam --widths=64 --depths=3 \
    --seeds=3 --batch_size=128 --tune=both --objective=test --schedule=cosine --warmup=0.05 \
    --lrs=0.004,0.008,0.016,0.032,0.064,0.128 --weight_decays=0.03125,0.0625,0.125,0.25,0.5,1 \
    --axis=steps --lengths=250,1000 --out=runs/axes/wd_both
else
  $PY experiments/axes_wd_independent.py inverse_width transfer_error --model=mlp --rule=mup \
    --optimizer=adam --widths=64,512 --depths=3 --seeds=2 --steps=1000 --batch_size=128 \
    --lr=0.004 --tune=weight_decay --objective=test \
    --weight_decays=0.0004883,0.0009766,0.001953,0.003906,0.007812,0.01562,0.03125,0.0625 \
    --out=runs/axes/wd_independent_inverse_width
fi
echo "== wd_$1 done $(date -u +%H:%M:%S) load: $(cut -d' ' -f1-3 /proc/loadavg)"
