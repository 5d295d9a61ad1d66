"""Identical blocks stacked along a leading axis and run with `nnx.scan`.

Scanning compiles one block however many there are, so compile time stays flat in depth.
`run_stack(..., scan=False)` runs the same stacked parameters in a Python loop (unrolled);
tests use it to check that both give the same outputs.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from flax import nnx

from zoo.optional import Identity


def stack(make_block: Callable[[nnx.Rngs], nnx.Module], count: int, rngs: nnx.Rngs):
    """`count` blocks from `make_block(rngs)`, each with its own keys, stacked on axis 0;
    no blocks (count 0) are the identity, and draw no keys."""
    if count == 0:
        return Identity()

    @nnx.split_rngs(splits=count)
    @nnx.vmap(in_axes=(0,), out_axes=0)
    def create(rngs: nnx.Rngs) -> nnx.Module:
        return make_block(rngs)

    return create(rngs)


def run_stack(blocks: nnx.Module, x: jax.Array, *, scan: bool = True) -> jax.Array:
    """Apply the stacked blocks in order: x -> block_0(x) -> block_1(...) -> ..."""
    if isinstance(blocks, Identity):
        return x
    if scan:

        @nnx.scan(in_axes=(nnx.Carry, 0), out_axes=nnx.Carry)
        def step(h: jax.Array, block: nnx.Module) -> jax.Array:
            return block(h)

        return step(x, blocks)
    graphdef, state = nnx.split(blocks)
    count = jax.tree.leaves(state)[0].shape[0]
    updated = []
    for k in range(count):
        block = nnx.merge(graphdef, jax.tree.map(lambda v, k=k: v[k], state))
        x = block(x)
        updated.append(nnx.state(block))  # e.g. BatchNorm running statistics, RNG counts
    nnx.update(blocks, jax.tree.map(lambda *v: jnp.stack(v), *updated))
    return x
