"""CIFAR-style pre-activation ResNet (He et al. 2016): `depth` = 6n+2 weight layers (the
input conv, 3 stages of n basic blocks of two convs, the readout; projection shortcuts not
counted), with `width`, 2 x `width`, 4 x `width` channels (the paper's 16/32/64 at width
16). Rules see depth as the K = 3n residual blocks.

Block: shortcut(a) + m * conv2(act(norm2(conv1(a)))) with a = act(norm1(x)) and m the rule's
residual multiplier. The first block of stages 2 and 3 halves the size and doubles the
channels (1x1 projection shortcut of a, outside the branch; the other blocks add x itself);
the other n - 1 blocks of a stage are scanned.
"""

from __future__ import annotations

import dataclasses

import jax
from flax import nnx

import rules
from rules import Linear, Rule
from rules.residual import branch_fields
from zoo.activations import ACTIVATIONS
from zoo.cnn import conv
from zoo.config import ModelConfig
from zoo.depths import resnet_blocks_per_stage as blocks_per_stage
from zoo.norms import norm
from zoo.optional import Identity, dropout
from zoo.roles import hidden_meta, input_meta, output_meta
from zoo.stack import run_stack, stack


class BasicBlock(nnx.Module):
    """Pre-activation basic block; `stride` 2 or a channel change adds a projection."""

    def __init__(
        self, c: ModelConfig, rule: Rule, c_in: int, c_out: int, stride: int, fields: dict, *, rngs
    ):
        k = (c.kernel_size, c.kernel_size)

        def weights(fan_in: int, kernel: tuple[int, int], stride: int, **extra):
            meta = hidden_meta(c, fan_in, c_out, **(fields | extra))
            return conv(c, meta, rule, kernel, strides=stride, rngs=rngs)

        self.norm1 = norm(c, rule, c_in, rngs=rngs, **fields)
        self.norm2 = norm(c, rule, c_out, rngs=rngs, **fields)
        self.conv1 = weights(c_in * k[0] * k[1], k, stride, branch_index=0, branch_layers=2)
        self.conv2 = weights(c_out * k[0] * k[1], k, 1, branch_index=1, branch_layers=2)
        # The projection reads the pre-activated input a; the identity shortcut adds x.
        self.projects = stride != 1 or c_in != c_out
        self.shortcut = (
            weights(c_in, (1, 1), stride, in_residual_branch=False) if self.projects else Identity()
        )
        self.activation = ACTIVATIONS[c.activation]
        self.dropout = dropout(c.dropout, rngs=rngs)
        blocks, base_blocks, block = fields["num_blocks"], fields["base_depth"], fields["block"]
        self.residual_multiplier = rules.residual_multiplier(
            rule,
            blocks,
            base_blocks,
            c_out,
            c.base_of(c_out),
            block=block,
            optimizer=c.optimizer,
            gain=c.gain,
        )

    def __call__(self, x: jax.Array) -> jax.Array:
        a = self.activation(self.norm1(x))
        u = self.dropout(self.activation(self.norm2(self.conv1(a))))
        skip = self.shortcut(a if self.projects else x)
        return skip + self.residual_multiplier * self.conv2(u)


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
        self.input = conv(c, input_meta(c, channels * k[0] * k[1]), rule, k, rngs=rngs)
        self.channels = channels
        self.stages = nnx.List()
        for s, width in enumerate((c.width, 2 * c.width, 4 * c.width)):
            c_in, stride = (c.width, 1) if s == 0 else (width // 2, 2)
            first = fields | {"block": s * n}
            first_block = BasicBlock(c, rule, c_in, width, stride, first, rngs=rngs)
            make = lambda r, w=width: BasicBlock(c, rule, w, w, 1, fields, rngs=r)  # noqa: E731
            self.stages.append(nnx.List([first_block, stack(make, n - 1, rngs)]))
        self.scan = c.scan_blocks
        last_width = 4 * c.width
        self.norm = norm(c, rule, last_width, rngs=rngs)
        self.activation = ACTIVATIONS[c.activation]
        self.output = Linear(output_meta(c, last_width), rule, use_bias=c.use_bias, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        h = self.input(x.reshape(*x.shape[:3], self.channels))
        for first_block, rest in self.stages:
            h = run_stack(rest, first_block(h), scan=self.scan)
        h = self.activation(self.norm(h))
        return self.output(h.mean(axis=(1, 2)))
