"""Rule overhead: a training step with a rule applied against the same model in plain Flax NNX.

    python benchmarks/rule_overhead.py [--quick] [--models mlp resnet lm]

The plain side is what a user would write by hand for muP with Adam: `nnx.Linear` layers
(and, for the ResNet, the same im2col convolution and `nnx.BatchNorm`) initialised with
muP's standard deviations, and `optax.multi_transform` giving each layer `optax.adam` at its
muP learning rate (input, biases, norms lr; hidden and readout lr / n). Both sides train
the same number of steps per jitted `lax.scan` chunk; steps are timed interleaved, medians
of several chunks. The MLP's plain side starts from our model's parameters, and the script
checks that both sides then produce the same losses (same math). Target: <= 3% slower.
The rule overhead proper is the "loop" ResNet and LM rows (the same structure on both sides);
the "scan" rows (our default, blocks in `nnx.scan`) also carry the cost of scanning. The LM's
plain side is a pre-LN decoder written with `nnx.Embed`, `nnx.LayerNorm`, `nnx.Linear` and
`jax.nn.dot_product_attention` (logits x sqrt(d0)/d, by hand).
"""

from __future__ import annotations

import argparse
import math

import common
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

import rules
import zoo
from scaling_training.engine import loss_and_accuracy, make_train_chunk, split_model

LR = 1e-3


# ---------------------------------------------------------------- plain NNX models
class PlainMLP(nnx.Module):
    def __init__(self, d_in: int, width: int, depth: int, classes: int, n: float, rngs):
        normal = nnx.initializers.normal
        self.input = nnx.Linear(d_in, width, kernel_init=normal(math.sqrt(1 / d_in)), rngs=rngs)
        std = math.sqrt(2 / width)
        self.hidden = nnx.List(
            [nnx.Linear(width, width, kernel_init=normal(std), rngs=rngs) for _ in range(depth - 1)]
        )
        self.output = nnx.Linear(width, classes, kernel_init=normal(std / math.sqrt(n)), rngs=rngs)

    def __call__(self, x):
        h = jax.nn.relu(self.input(x))
        for layer in self.hidden:
            h = jax.nn.relu(layer(h))
        return self.output(h)


def im2col(x, stride: int):
    """3x3 SAME patches, (N, H, W, C) -> (N, H/s, W/s, 9C), as a hand-written conv would."""
    h, w = x.shape[1] // stride, x.shape[2] // stride
    x = jnp.pad(x, [(0, 0), (1, 1), (1, 1), (0, 0)]) if stride == 1 else jnp.pad(
        x, [(0, 0), (0, 1), (0, 1), (0, 0)])  # fmt: skip
    cols = [x[:, i : i + (h - 1) * stride + 1 : stride, j : j + (w - 1) * stride + 1 : stride]
            for i in range(3) for j in range(3)]  # fmt: skip
    return jnp.concatenate(cols, -1)


class PlainConv(nnx.Module):
    def __init__(self, c_in: int, c_out: int, k: int, stride: int, std: float, rngs):
        self.kernel = nnx.Param(std * jax.random.normal(rngs.params(), (k * k * c_in, c_out)))
        self.bias = nnx.Param(jnp.zeros((c_out,)))
        self.k, self.stride = k, stride

    def __call__(self, x):
        s = self.stride
        patches = x[:, ::s, ::s] if self.k == 1 else im2col(x, s)
        return patches @ self.kernel[...] + self.bias[...]


class PlainBlock(nnx.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, rngs):
        self.norm1 = nnx.BatchNorm(c_in, momentum=0.9, rngs=rngs)
        self.norm2 = nnx.BatchNorm(c_out, momentum=0.9, rngs=rngs)
        self.conv1 = PlainConv(c_in, c_out, 3, stride, math.sqrt(2 / (9 * c_in)), rngs)
        self.conv2 = PlainConv(c_out, c_out, 3, 1, math.sqrt(2 / (9 * c_out)), rngs)
        self.shortcut = nnx.data(None)
        if stride != 1 or c_in != c_out:
            self.shortcut = PlainConv(c_in, c_out, 1, stride, math.sqrt(2 / c_in), rngs)

    def __call__(self, x):
        a = jax.nn.relu(self.norm1(x))
        u = jax.nn.relu(self.norm2(self.conv1(a)))
        skip = self.shortcut(a) if self.shortcut is not None else x
        return skip + self.conv2(u)


class PlainResNet(nnx.Module):
    def __init__(self, channels: int, width: int, depth: int, classes: int, n: float, rngs):
        blocks = (depth - 2) // 6
        self.input = PlainConv(channels, width, 3, 1, math.sqrt(1 / (9 * channels)), rngs)
        layers, c_in = [], width
        for s, w in enumerate((width, 2 * width, 4 * width)):
            for b in range(blocks):
                stride = 2 if (s > 0 and b == 0) else 1
                layers.append(PlainBlock(c_in, w, stride, rngs))
                c_in = w
        self.blocks = nnx.List(layers)
        self.norm = nnx.BatchNorm(c_in, momentum=0.9, rngs=rngs)
        std = math.sqrt(2 / c_in) / math.sqrt(n)
        self.output = nnx.Linear(c_in, classes, kernel_init=nnx.initializers.normal(std),
                                 rngs=rngs)  # fmt: skip

    def __call__(self, x):
        h = self.input(x)
        for block in self.blocks:
            h = block(h)
        return self.output(jax.nn.relu(self.norm(h)).mean(axis=(1, 2)))


class PlainLMBlock(nnx.Module):
    """A pre-LN causal block as people write it: nnx.LayerNorm, nnx.Linear, JAX's attention."""

    def __init__(self, width: int, heads: int, logit_scale: float, rngs):
        def linear(d_in, d_out, gain):
            init = nnx.initializers.normal(math.sqrt(gain / d_in))
            return nnx.Linear(d_in, d_out, kernel_init=init, rngs=rngs)

        self.norm1, self.norm2 = nnx.LayerNorm(width, rngs=rngs), nnx.LayerNorm(width, rngs=rngs)
        self.qkv, self.proj = linear(width, 3 * width, 1.0), linear(width, width, 1.0)
        self.fc1, self.fc2 = linear(width, 4 * width, 1.0), linear(4 * width, width, 2.0)
        self.heads, self.logit_scale = heads, logit_scale

    def __call__(self, h):
        batch, length, width = h.shape
        qkv = self.qkv(self.norm1(h)).reshape(batch, length, self.heads, -1)
        q, k, v = jnp.split(qkv, 3, axis=-1)
        a = jax.nn.dot_product_attention(q, k, v, scale=self.logit_scale, is_causal=True)
        h = h + self.proj(a.reshape(batch, length, width))
        return h + self.fc2(jax.nn.relu(self.fc1(self.norm2(h))))


class PlainLM(nnx.Module):
    """Token + learned position tables (std 1), K blocks in a Python loop, LayerNorm, readout."""

    def __init__(self, vocab: int, length: int, width: int, depth: int, heads: int, n: float,
                 rngs):  # fmt: skip
        embed_init = nnx.initializers.normal(1.0)
        self.input = nnx.Embed(vocab, width, embedding_init=embed_init, rngs=rngs)
        self.positions = nnx.Embed(length, width, embedding_init=embed_init, rngs=rngs)
        head_dim = width // heads
        logit_scale = math.sqrt(head_dim / n) / head_dim  # muP: sqrt(d0) / d
        self.blocks = nnx.List([PlainLMBlock(width, heads, logit_scale, rngs)
                                for _ in range(depth)])  # fmt: skip
        self.norm = nnx.LayerNorm(width, rngs=rngs)
        init = nnx.initializers.normal(math.sqrt(1 / width) / math.sqrt(n))
        self.output = nnx.Linear(width, vocab, kernel_init=init, rngs=rngs)

    def __call__(self, tokens):
        h = self.input(tokens) + self.positions.embedding[...][: tokens.shape[1]]
        for block in self.blocks:
            h = block(h)
        return self.output(self.norm(h))


def mup_adam_by_hand(params: dict, n: float) -> optax.GradientTransformation:
    """muP Adam written by hand: matrices after the input layer get lr / n, the rest lr."""

    def label(path, leaf) -> str:
        names = [getattr(k, "key", getattr(k, "idx", None)) for k in path]
        first = names[0] in ("input", "positions")  # input-like: tables and the first layer
        return "lr" if leaf.ndim == 1 or first else "lr/n"

    labels = jax.tree_util.tree_map_with_path(label, params)
    groups = {"lr": optax.adam(LR), "lr/n": optax.adam(LR / n)}
    return optax.multi_transform(groups, labels)


def plain_chunk(graphdef, optimizer):
    """The jitted scan of Adam steps of scaling_training.engine, with nothing of `rules` in it."""

    def loss_fn(params, rest, x, y):
        model = nnx.merge(graphdef, params, rest)
        loss, _ = loss_and_accuracy(model(x), y)
        return loss, nnx.to_pure_dict(nnx.state(model, nnx.Not(nnx.Param)))

    @jax.jit
    def chunk(params, rest, opt_state, xs, ys):
        def step(carry, batch):
            params, rest, opt_state = carry
            (loss, rest), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, rest, *batch)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), rest, opt_state), loss

        return jax.lax.scan(step, (params, rest, opt_state), (xs, ys))

    return chunk


# ---------------------------------------------------------------- measurement
def runner(chunk, params, rest, opt_state, xs, ys):
    state = [params, rest, opt_state]

    def run():
        out = chunk(*state, xs, ys)
        jax.block_until_ready(out)

    run()  # compile
    return run


def side_by_side(ours: nnx.Module, plain: nnx.Module, optimizer: str, hand_tx, xs, ys,
                 copy_params: bool = False, plain_name: str = "plain") -> dict:  # fmt: skip
    """Compiled runners of our `optimizer` step ("ours") and of the plain model's hand-written
    one (`hand_tx(plain params)`); with `copy_params` both start from our params and must
    reach the same losses first."""
    graphdef, params, rest = split_model(ours)
    tx = rules.optimizer(optimizer, LR, rules.param_scales(ours), inject=True)
    our_chunk = make_train_chunk(graphdef, tx)
    p_graphdef, p_params, p_rest = split_model(plain)
    if copy_params:
        p_params = jax.tree.map(lambda a: a, params)
    p_tx = hand_tx(p_params)
    p_chunk = plain_chunk(p_graphdef, p_tx)
    if copy_params:  # same start, same math -> same losses
        ours_losses = our_chunk(params, rest, tx.init(params), xs, ys)[3]
        plain_losses = p_chunk(p_params, p_rest, p_tx.init(p_params), xs, ys)[1]
        np.testing.assert_allclose(ours_losses, plain_losses, rtol=2e-4, atol=2e-5)
    return {
        "ours": runner(our_chunk, params, rest, tx.init(params), xs, ys),
        plain_name: runner(p_chunk, p_params, p_rest, p_tx.init(p_params), xs, ys),
    }


def measure(label: str, ours: nnx.Module, plain: nnx.Module, n: float, xs, ys, repeats: int,
            copy_params: bool = False, judged: bool = True) -> dict[str, float]:  # fmt: skip
    """Print the row; return the median seconds per step of each side ("ours", "plain")."""
    hand_tx = lambda p_params: mup_adam_by_hand(p_params, n)  # noqa: E731
    fns = side_by_side(ours, plain, "adam", hand_tx, xs, ys, copy_params)
    t = common.interleaved(fns, repeats)
    steps = xs.shape[0]
    ratio = t["ours"] / t["plain"]
    verdict = common.verdict(ratio <= 1.03) if judged else "(scan vs loop, not judged)"
    print(f"{label:<34}{1e3 * t['ours'] / steps:>10.2f}{1e3 * t['plain'] / steps:>10.2f}"
          f"{ratio:>9.3f}  {verdict}", flush=True)  # fmt: skip
    return {name: seconds / steps for name, seconds in t.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, few repeats")
    parser.add_argument("--models", nargs="+", default=["mlp", "resnet", "lm"],
                        choices=["mlp", "resnet", "lm"], help="which rows to measure")  # fmt: skip
    args = parser.parse_args()
    common.header("muP, Adam; ms per training step (median of interleaved chunks)")
    repeats, steps = (3, 5) if args.quick else (15, 20)
    print(f"{'model':<34}{'ours ms':>10}{'plain ms':>10}{'ratio':>9}  target <= 1.03")
    key = jax.random.key(0)
    mlp_shapes = ((64, 16),) if args.quick else ((256, 64), (1024, 64))
    for width, base in mlp_shapes if "mlp" in args.models else ():
        config = zoo.ModelConfig(input_shape=(40,), num_classes=10, width=width, depth=3,
                                 base_width=base)  # fmt: skip
        ours = zoo.build("mlp", config, rules.mup, nnx.Rngs(0))
        plain = PlainMLP(40, width, 3, 10, width / base, nnx.Rngs(0))
        xs = jax.random.normal(key, (steps, 128, 40))
        ys = jax.random.randint(key, (steps, 128), 0, 10)
        measure(f"mlp width {width} (base {base}), batch 128", ours, plain, width / base, xs, ys,
                repeats, copy_params=True)  # fmt: skip
    width, base, depth, size = (8, 4, 8, 8) if args.quick else (32, 16, 20, 16)
    xs = jax.random.normal(key, (steps // 2, 32, size, size, 3))
    ys = jax.random.randint(key, (steps // 2, 32), 0, 10)
    for scan in (True, False) if "resnet" in args.models else ():
        config = zoo.ModelConfig(input_shape=(size, size, 3), num_classes=10, width=width,
                                 depth=depth, base_width=base, normalization="batch",
                                 scan_blocks=scan)  # fmt: skip
        ours = zoo.build("resnet", config, rules.mup, nnx.Rngs(0))
        plain = PlainResNet(3, width, depth, 10, width / base, nnx.Rngs(0))
        label = f"resnet-{depth} w{width} {'scan' if scan else 'loop'}, {size}x{size}x3 b32"
        measure(label, ours, plain, width / base, xs, ys, repeats, judged=not scan)
    # lm: the trainer's default shape (width 128, base 64, 2 blocks, 4 heads, 64 tokens of a
    # 256-byte vocabulary, batch 32); a 4-block, width-256 one as well unless --quick
    shapes = ((64, 32, 2, 32, 8),) if args.quick else ((128, 64, 2, 64, 32), (256, 64, 4, 64, 32))
    for width, base, depth, length, batch in shapes if "lm" in args.models else ():
        xs = jax.random.randint(key, (steps, batch, length), 0, 256)
        ys = jnp.roll(xs, -1, axis=-1)
        for scan in (True, False):
            config = zoo.ModelConfig(input_shape=(length,), num_classes=256, width=width,
                                     depth=depth, base_width=base, normalization="layer",
                                     heads=4, scan_blocks=scan)  # fmt: skip
            ours = zoo.build("lm", config, rules.mup, nnx.Rngs(0))
            plain = PlainLM(256, length, width, depth, 4, width / base, nnx.Rngs(0))
            label = f"lm w{width} (base {base}) K{depth} {'scan' if scan else 'loop'}, b{batch}"
            measure(label, ours, plain, width / base, xs, ys, repeats, judged=not scan)


if __name__ == "__main__":
    main()
