#!/bin/bash
# MLP (mup, Adam, width 64.., depth 3, MNIST-1D, batch 128), weight decay measurements beside
# experiments/axes_mlp_wd.sh (coupled decay across width). Argument:
#   both         LR x coupled weight decay, a 2-D grid, cosine with 5% warm-up, 250 -> 1000
#                steps (does the pair found on the short proxy carry to 4x the length?)
#   independent  independent decay (per step wd x s.wd, no LR factor) with Qiu et al.'s
#                1/width scaling (`inverse_width`), width 64 -> 512, LR fixed at 0.004, test
#                loss after 1000 steps (the coupled run's protocol; 2 seeds instead of 3)
#   coupled_constant   coupled decay with a constant per-layer lambda times each layer's LR
#                multiplier (torch AdamW param groups: decay per step lr x s.lr x wd, 1/n on
#                hidden and readout weights under muP), width 64 -> 512, 4 seeds
#   coupled_completep  the library's own coupled decay (CompleteP: lambda x n for an LR / n,
#                decay per step lr x wd at every width), the same protocol, 4 seeds
# Run at normal priority, one at a time:
#   bash experiments/axes_mlp_wd_more.sh both > runs/axes/wd_both.log 2>&1
set -e
export PYTHONPATH=$PWD
PY=.venv/bin/python
WD_MLP="--model=mlp --rule=mup --optimizer=adam --widths=64,512 --depths=3 --steps=1000 \
  --batch_size=128 --lr=0.004 --tune=weight_decay --objective=test"
COUPLED_WDS=0.125,0.25,0.5,1,2,4,8,16,32
echo "== wd_$1 $(date -u +%H:%M:%S) load: $(cut -d' ' -f1-3 /proc/loadavg)"
case "$1" in
both)
  $PY -m scaling transfer_error --model=mlp --rule=mup --optimizer=adam --widths=64 --depths=3 \
    --seeds=3 --batch_size=128 --tune=both --objective=test --schedule=cosine --warmup=0.05 \
    --lrs=0.004,0.008,0.016,0.032,0.064,0.128 --weight_decays=0.03125,0.0625,0.125,0.25,0.5,1 \
    --axis=steps --lengths=250,1000 --out=runs/axes/wd_both ;;
independent)
  $PY -m scaling transfer_error $WD_MLP --seeds=2 --weight_decay_mode=independent \
    --weight_decay_width=inverse_width \
    --weight_decays=0.0004883,0.0009766,0.001953,0.003906,0.007812,0.01562,0.03125,0.0625 \
    --out=runs/axes/wd_independent_inverse_width ;;
coupled_constant | coupled_completep)
  $PY -m scaling transfer_error $WD_MLP --seeds=4 --weight_decay_mode=coupled \
    --weight_decay_width=${1#coupled_} --weight_decays=$COUPLED_WDS --out=runs/axes/wd_$1 ;;
*) echo "unknown measurement $1" >&2; exit 2 ;;
esac
echo "== wd_$1 done $(date -u +%H:%M:%S) load: $(cut -d' ' -f1-3 /proc/loadavg)"
