#!/bin/bash
# lm (mup, AdamW: coupled decay 0.1, cosine with 5% warm-up) on grammar_text: the optimal LR
# against training length and against batch size. Argument: steps | batch.
# nice -n 10 bash experiments/axes_lm.sh steps > runs/axes/lm_steps.log 2>&1
set -e
export PYTHONPATH=$PWD
PY=.venv/bin/python
COMMON="--model=lm --rule=mup --optimizer=adamw --weight_decay=0.1 --widths=64 --depths=2 --seeds=2 --schedule=cosine --warmup=0.05"
LRS="--lrs=0.0009766,0.001381,0.001953,0.002762,0.003906,0.005524,0.007812,0.01105,0.01562,0.0221,0.03125,0.04419"
echo "== lm_$1 $(date -u +%H:%M:%S) load: $(cut -d' ' -f1-3 /proc/loadavg)"
if [ "$1" = steps ]; then
  $PY -m scaling transfer_error $COMMON $LRS --axis=steps --lengths=50,100,200,400 --batch_size=16 \
    --correction=horizon:0.3 --out=runs/axes/lm_steps
else
  $PY -m scaling transfer_error $COMMON $LRS --axis=batch_size --batch_sizes=8,16,32,64 --steps=400 \
    --correction=batch:sqrt --out=runs/axes/lm_batch
fi
echo "== lm_$1 done $(date -u +%H:%M:%S) load: $(cut -d' ' -f1-3 /proc/loadavg)"
