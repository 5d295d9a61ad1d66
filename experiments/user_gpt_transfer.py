"""Learning-rate transfer of a user's own GPT under the README recipe, init kept.

    nice python experiments/user_gpt_transfer.py --widths=64,512 --seeds=2 --steps=100 \
        --out=runs/transfer/user_gpt

The model is GPT-2 as small NNX codebases write it (N(0, 0.02) weights, residual
projections N(0, 0.02/sqrt(2 depth)), learned positions, head_dim 16 so heads grow with
width), made muP by `rules.parametrize(model, base, rules.mup)` with the default
init="keep" (the base model at width 64 is the author's, bit for bit) and trained with
`rules.optimizer("adam", ...)`. `scaling.transfer_error.measure` sweeps the LRs at every
width (one vmapped program per width) on the offline grammar_text bytes and reports the
transfer error |log2(lr_proxy / lr_target)| and the loss penalty of training the target at
the proxy's optimum. Writes OUT/result.json.
"""

from __future__ import annotations

import argparse
import json
import os

import jax
from flax import nnx

import rules

BASE_WIDTH = 64
HEAD_DIM = 16


class Block(nnx.Module):
    def __init__(self, d: int, depth: int, *, rngs: nnx.Rngs):
        init = nnx.initializers.normal(0.02)
        projection = nnx.initializers.normal(0.02 / (2 * depth) ** 0.5)
        self.ln_1 = nnx.LayerNorm(d, rngs=rngs)
        self.attn = nnx.MultiHeadAttention(
            num_heads=d // HEAD_DIM, in_features=d, kernel_init=init,
            out_kernel_init=projection, decode=False, rngs=rngs,
        )  # fmt: skip
        self.ln_2 = nnx.LayerNorm(d, rngs=rngs)
        self.c_fc = nnx.Linear(d, 4 * d, kernel_init=init, rngs=rngs)
        self.c_proj = nnx.Linear(4 * d, d, kernel_init=projection, rngs=rngs)

    def __call__(self, x, mask):
        x = x + self.attn(self.ln_1(x), mask=mask)
        return x + self.c_proj(nnx.gelu(self.c_fc(self.ln_2(x))))


class GPT(nnx.Module):
    def __init__(self, d: int, depth: int, vocab: int, context: int, *, rngs: nnx.Rngs):
        init = nnx.initializers.normal(0.02)
        self.wte = nnx.Embed(vocab, d, embedding_init=init, rngs=rngs)
        self.wpe = nnx.Param(init(rngs.params(), (context, d)))
        self.blocks = nnx.List([Block(d, depth, rngs=rngs) for _ in range(depth)])
        self.ln_f = nnx.LayerNorm(d, rngs=rngs)
        self.lm_head = nnx.Linear(d, vocab, use_bias=False, kernel_init=init, rngs=rngs)

    def __call__(self, tokens):
        x = self.wte(tokens) + self.wpe[...][: tokens.shape[1]]
        mask = nnx.make_causal_mask(tokens)
        for block in self.blocks:
            x = block(x, mask)
        return self.lm_head(self.ln_f(x))


def factory(vocab: int, context: int):
    """`build(width, depth, seed, rule, optimizer)` for scaling.user_models.UserModel."""

    def build(width, depth, seed, rule, optimizer):
        model = GPT(width, depth, vocab, context, rngs=nnx.Rngs(seed))
        base = GPT(BASE_WIDTH, depth, vocab, context, rngs=nnx.Rngs(seed))
        delta = nnx.eval_shape(lambda: GPT(2 * BASE_WIDTH, depth, vocab, context,
                                           rngs=nnx.Rngs(0)))  # fmt: skip
        rules.parametrize(
            model, base, rule, optimizer=optimizer, activation="gelu",
            delta=delta if width == BASE_WIDTH else None,
        )  # fmt: skip
        return model

    return build


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--widths", default="64,512")
    p.add_argument("--depth", type=int, default=2)
    p.add_argument("--rule", default="mup")
    p.add_argument("--lrs", default="2.83e-3,4e-3,5.66e-3,8e-3,1.13e-2,1.6e-2")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--batch_size", type=int, default=16)
    p.add_argument("--seq_len", type=int, default=16)
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--widen", type=int, default=1)
    p.add_argument("--out", default="runs/transfer/user_gpt")
    args = p.parse_args()
    try:
        widths = [int(w) for w in args.widths.split(",")]
        lrs = [float(v) for v in args.lrs.split(",")]
    except ValueError as e:
        p.exit(2, f"error: --widths and --lrs are comma-separated numbers ({e})\n")
    if len(widths) < 2 or min(widths) < HEAD_DIM or any(w % HEAD_DIM for w in widths):
        p.exit(2, f"error: --widths needs two or more multiples of {HEAD_DIM}\n")

    import scaling_data as data
    from scaling import transfer_error
    from scaling.grid import GridSpec
    from scaling.user_models import UserModel

    dataset = data.load("grammar_text", seq_len=args.seq_len)
    spec = UserModel(
        model="experiments/user_gpt_transfer.py:GPT",
        rule=args.rule,
        factory=factory(dataset.num_classes, args.seq_len),
        optimizer="adam",
        input_shape=dataset.input_shape,
        num_classes=dataset.num_classes,
    )
    grid = GridSpec(spec, dataset, args.seeds, args.steps, args.batch_size, "adam")
    result = transfer_error.measure(grid, widths, "width", args.depth, lrs, widen=args.widen)
    result["settings"] = vars(args) | {"devices": str(jax.devices())}
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "result.json"), "w") as f:
        json.dump(result, f, indent=1)
    for target in result["targets"]:
        print(
            f"width {widths[0]} -> {target['width']}: lr_opt {result['proxy']['lr_opt']:.4g} -> "
            f"{target['lr_opt']:.4g}, transfer error {target['transfer_error_log2']} log2, "
            f"loss penalty {target['loss_penalty']}"
        )


if __name__ == "__main__":
    main()
