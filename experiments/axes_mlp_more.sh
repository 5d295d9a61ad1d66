#!/bin/bash
# Follow-up of axes_mlp.sh: the batch-size axis under a cosine schedule with 5% warm-up.
set -e
export PYTHONPATH=$PWD
PY=.venv/bin/python
COMMON="--model=mlp --rule=mup --optimizer=adam --widths=64 --depths=3 --seeds=4"
LRS="--lrs=0.0002441,0.0003453,0.0004883,0.0006905,0.0009766,0.001381,0.001953,0.002762,0.003906,0.005524,0.007812,0.01105,0.01562,0.0221,0.03125,0.04419,0.0625"
echo "== batch_cosine $(date -u +%H:%M:%S) load: $(cut -d' ' -f1-3 /proc/loadavg)"
$PY -m scaling transfer_error $COMMON $LRS --axis=batch_size --batch_sizes=32,64,128,256 --steps=2000 \
  --schedule=cosine --warmup=0.05 --correction=batch:sqrt --out=runs/axes/batch_cosine
echo "== batch_cosine done $(date -u +%H:%M:%S) load: $(cut -d' ' -f1-3 /proc/loadavg)"
