#!/bin/bash
# MLP (mup, Adam) on MNIST-1D: the optimal coupled weight decay from width 64 to 512, at a
# fixed LR (mup transfers it), test loss after 1000 steps (weight decay is a regularizer).
# Run from the worktree root: nice -n 10 bash experiments/axes_mlp_wd.sh > runs/axes/wd.log 2>&1
set -e
export PYTHONPATH=$PWD
echo "== wd_coupled $(date -u +%H:%M:%S) load: $(cut -d' ' -f1-3 /proc/loadavg)"
.venv/bin/python -m scaling transfer_error --model=mlp --rule=mup --optimizer=adam \
  --widths=64,128,256,512 --depths=3 --seeds=3 --steps=1000 --batch_size=128 --lr=0.004 \
  --tune=weight_decay --objective=test \
  --weight_decays=0.0625,0.125,0.25,0.5,1,2,4,8,16 --out=runs/axes/wd_coupled
echo "== wd_coupled done $(date -u +%H:%M:%S) load: $(cut -d' ' -f1-3 /proc/loadavg)"
