"""CIFAR-style pre-activation ResNet (He et al. 2016): depth 6n+2, three stages of n basic
blocks with `width`, 2 x `width`, 4 x `width` channels (the paper's 16/32/64 at width 16).

Block: shortcut(a) + m * conv2(act(norm2(conv1(a)))) with a = act(norm1(x)) and m the rule's
branch multiplier. The first block of stages 2 and 3 halves the size and doubles the channels
(1x1 projection shortcut, outside the branch); the other n - 1 blocks of a stage are scanned.
"""

from __future__ import annotations

import dataclasses

import jax
from flax import nnx

from rules import Conv, Linear, Rule
from zoo.activations import ACTIVATIONS
from zoo.config import ModelConfig
from zoo.depths import resnet_blocks_per_stage as blocks_per_stage
from zoo.norms import make_norm
from zoo.residual import branch_fields, branch_multiplier
from zoo.stack import run_stack, stack


class BasicBlock(nnx.Module):
    """Pre-activation basic block; `stride` 2 or a channel change adds a projection."""

    def __init__(self, c: ModelConfig, rule: Rule, c_in: int, c_out: int, stride: int,
                 fields: dict, *, rngs: nnx.Rngs):  # fmt: skip
        k = (c.kernel_size, c.kernel_size)

        def conv(fan_in: int, kernel: tuple[int, int], stride: int, **extra) -> Conv:
            meta = c.meta("hidden", fan_in, c_out, scales_in=True, scales_out=True,
                          gain=c.gain, **(fields | extra))  # fmt: skip
            return Conv(meta, rule, kernel, strides=stride, padding=c.conv_padding,
                        use_bias=c.use_bias, implementation=c.conv_implementation,
                        rngs=rngs)  # fmt: skip

        def norm(channels: int):
            meta = c.meta("norm", 1, channels, scales_in=False, scales_out=True, gain=1.0,
                          **fields)  # fmt: skip
            return nnx.data(make_norm(c.normalization, meta, rule, rngs=rngs))

        self.norm1, self.norm2 = norm(c_in), norm(c_out)
        self.conv1 = conv(c_in * k[0] * k[1], k, stride, branch_index=0, branch_layers=2)
        self.conv2 = conv(c_out * k[0] * k[1], k, 1, branch_index=1, branch_layers=2)
        self.shortcut = nnx.data(None)
        if stride != 1 or c_in != c_out:
            self.shortcut = conv(c_in, (1, 1), stride, in_residual_branch=False)
        self.activation = ACTIVATIONS[c.activation]
        self.dropout = nnx.data(nnx.Dropout(c.dropout, rngs=rngs) if c.dropout else None)
        self.branch_multiplier = branch_multiplier(c, rule, c_out, fields)

    def _pre(self, norm, x: jax.Array) -> jax.Array:
        return self.activation(norm(x) if norm is not None else x)

    def __call__(self, x: jax.Array) -> jax.Array:
        a = self._pre(self.norm1, x)
        u = self._pre(self.norm2, self.conv1(a))
        u = self.dropout(u) if self.dropout is not None else u
        skip = self.shortcut(a) if self.shortcut is not None else x
        return skip + self.branch_multiplier * self.conv2(u)


class ResNet(nnx.Module):
    """input conv, 3 stages of n blocks, norm, act, global mean pool, readout."""

    def __init__(self, config: ModelConfig, rule: Rule, *, rngs: nnx.Rngs):
        n, n0 = blocks_per_stage(config.depth), blocks_per_stage(config.base_depth or config.depth)
        # Every layer tells the rule depth in residual blocks, K = 3n (base K0 = 3 n0), so that
        # a depth rule gives all layers one depth ratio.
        c = dataclasses.replace(config, depth=3 * n, base_depth=3 * n0)
        fields = branch_fields(3 * n, 3 * n0)
        channels = c.input_shape[2] if len(c.input_shape) == 3 else 1
        k = (c.kernel_size, c.kernel_size)
        first = c.meta("input", channels * k[0] * k[1], c.width, scales_in=False,
                       scales_out=True, gain=1.0)  # fmt: skip
        self.input = Conv(first, rule, k, padding=c.conv_padding, use_bias=c.use_bias,
                          implementation=c.conv_implementation, rngs=rngs)  # fmt: skip
        self.channels = channels
        self.stages = nnx.List()
        for s, width in enumerate((c.width, 2 * c.width, 4 * c.width)):
            c_in, stride = (c.width, 1) if s == 0 else (width // 2, 2)
            first_block = BasicBlock(c, rule, c_in, width, stride, fields | {"block": s * n},
                                     rngs=rngs)  # fmt: skip
            make = lambda r, w=width: BasicBlock(c, rule, w, w, 1, fields, rngs=r)  # noqa: E731
            rest = stack(make, n - 1, rngs) if n > 1 else None
            self.stages.append(nnx.List([first_block, nnx.data(rest)]))
        self.scan = c.scan_blocks
        last_width = 4 * c.width
        norm = c.meta("norm", 1, last_width, scales_in=False, scales_out=True, gain=1.0)
        self.norm = nnx.data(make_norm(c.normalization, norm, rule, rngs=rngs))
        self.activation = ACTIVATIONS[c.activation]
        last = c.meta("output", last_width, c.num_classes, scales_in=True, scales_out=False,
                      gain=c.gain)  # fmt: skip
        self.output = Linear(last, rule, use_bias=c.use_bias, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        h = self.input(x.reshape(*x.shape[:3], self.channels))
        for first_block, rest in self.stages:
            h = first_block(h)
            if rest is not None:
                h = run_stack(rest, h, scan=self.scan)
        h = self.activation(self.norm(h) if self.norm is not None else h)
        return self.output(h.mean(axis=(1, 2)))
