"""`python -m scaling transfer_error` with the grid never widened (`Tuning.widen = 0`).

On a flat loss curve (the lm's weight decay below its cliff, experiments/axes_lm_wd.sh) the
seed-mean argmin is noise and lands on a grid edge about as often as inside; the CLI then
re-trains a widened grid (3 more values) at every width, which the shared CPU could not
afford at width 256-512. Here an edge optimum is reported as such (`where`: below/above)
and the run goes on. Same flags as the CLI:

    python experiments/transfer_error_nowiden.py --model=lm ... --tune=weight_decay ...
"""

from __future__ import annotations

import dataclasses
import sys

from absl import app

import scaling.__main__ as cli
from scaling import transfer_axes

_sweep = transfer_axes.sweep


def _sweep_no_widening(spec, point, tuning, *args, **kwargs):
    return _sweep(spec, point, dataclasses.replace(tuning, widen=0), *args, **kwargs)


if __name__ == "__main__":
    transfer_axes.sweep = _sweep_no_widening
    app.run(cli.main, argv=[sys.argv[0], "transfer_error", *sys.argv[1:]], flags_parser=cli.parse)
