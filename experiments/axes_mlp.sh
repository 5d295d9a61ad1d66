#!/bin/bash
# MLP (mup, Adam) on MNIST-1D: the optimal LR against training length and batch size.
# Run from the worktree root: nice -n 10 bash experiments/axes_mlp.sh > runs/axes/mlp.log 2>&1
set -e
export PYTHONPATH=$PWD
PY=.venv/bin/python
COMMON="--model=mlp --rule=mup --optimizer=adam --widths=64 --depths=3 --seeds=4"
LRS="--lrs=0.0002441,0.0003453,0.0004883,0.0006905,0.0009766,0.001381,0.001953,0.002762,0.003906,0.005524,0.007812,0.01105,0.01562,0.0221,0.03125,0.04419,0.0625"
run() { name=$1; shift; echo "== $name $(date -u +%H:%M:%S) load: $(cut -d' ' -f1-3 /proc/loadavg)"; \
  $PY -m scaling transfer_error $COMMON $LRS "$@" --out=runs/axes/$name; \
  echo "== $name done $(date -u +%H:%M:%S) load: $(cut -d' ' -f1-3 /proc/loadavg)"; }
run steps_cosine --axis=steps --lengths=250,500,1000,2000 --batch_size=128 --schedule=cosine --warmup=0.05 --correction=horizon:0.3
run batch_constant --axis=batch_size --batch_sizes=32,64,128,256 --steps=2000 --correction=batch:sqrt,batch:linear
run steps_constant --axis=steps --lengths=250,500,1000,2000 --batch_size=128 --correction=horizon:0.3
