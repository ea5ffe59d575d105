"""Run a differentiable CPU function with one torch thread, forward *and* backward.

Why: on a small, shared CPU (2 cores here, other jobs running), torch's
OpenMP workers spin at every barrier of every op; the projection and
bookkeeping of a render are hundreds of tiny ops on ~20K-element tensors, so
while another process holds a core each barrier waits for a descheduled
thread. Measured here with 20K Gaussians, 256 px, load ~4: projection forward
8-12 ms with 1 thread vs 45-170 ms with 2; a whole forward + backward 190-236
ms vs 0.9-2.3 s. With a quiet machine one thread costs nothing measurable:
these ops are too small to gain from a second core. The heavy part (numba
compositing) keeps its own thread pool, so it still uses every core.

The backward of ordinary autograd ops runs after ``forward`` has returned,
outside any ``with`` block, so the function is wrapped in an autograd
Function (as ``torch.utils.checkpoint`` does): its forward builds the inner
graph with one thread, its backward differentiates that graph with one
thread. ``torch.set_num_threads`` is process-wide: another Python thread doing
torch work at the same moment would briefly run single-threaded too.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager

import torch
from torch import Tensor


@contextmanager
def torch_threads(n: int):  # noqa: ANN201
    """Temporarily set torch's intra-op thread count (a no-op when it already is n)."""
    old = torch.get_num_threads()
    if old == n:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _is_grad_leaf(x: object) -> bool:
    return isinstance(x, Tensor) and x.requires_grad


class _SingleThreaded(torch.autograd.Function):
    @staticmethod
    def forward(ctx, run: Callable, *inputs):  # noqa: ANN001, ANN205
        with torch_threads(1), torch.enable_grad():
            leaves = [x.detach().requires_grad_() if _is_grad_leaf(x) else x for x in inputs]
            outs = run(*leaves)
        ctx.leaves, ctx.outs = leaves, outs
        returned = tuple(o.detach() for o in outs)
        ctx.mark_non_differentiable(*[r for r, o in zip(returned, outs) if not o.requires_grad])
        return returned

    @staticmethod
    def backward(ctx, *grads):  # noqa: ANN001, ANN205
        need = [i for i, x in enumerate(ctx.leaves) if _is_grad_leaf(x)]
        pairs = [(o, g) for o, g in zip(ctx.outs, grads) if o.requires_grad and g is not None]
        result = [None] * len(ctx.leaves)
        if need and pairs:
            with torch_threads(1):
                got = torch.autograd.grad(  # retain: the inner graph lives (and dies) with ctx, so that
                    [o for o, _ in pairs],  # backward(retain_graph=True) on the outer graph works twice
                    [ctx.leaves[i] for i in need], [g for _, g in pairs], allow_unused=True, retain_graph=True,
                )  # fmt: skip
            for i, g in zip(need, got):
                result[i] = g
        return (None, *result)


def single_threaded(run: Callable[..., tuple[Tensor, ...]], *inputs) -> tuple[Tensor, ...]:  # noqa: ANN002
    """``run(*inputs)`` (a tuple of tensors) with one torch thread in forward and backward.

    Non-tensor inputs are passed through. Gradients reach every input tensor
    that requires grad, exactly as if ``run`` had been called directly.
    """
    if not (torch.is_grad_enabled() and any(_is_grad_leaf(x) for x in inputs)):
        with torch_threads(1):
            return run(*inputs)
    return _SingleThreaded.apply(run, *inputs)
