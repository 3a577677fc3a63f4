"""The products of zero tangents, skipped in eager JVPs: linear layers and convolutions with their own forward-mode rule.

The eager counterpart of `tbcm.zero_tangents` (which does it for compiled JVPs). The JVP of y = x W^T + b is
dy = dx W^T + x dW^T + db, and PyTorch's forward-mode rules materialise the tangent of an input that has none as
zeros, so a frozen weight (every weight in the loss's JVP of theta^-) still costs the product x 0^T and the add of
its zeros: three matrix products per linear layer instead of two, three convolutions per convolution
(pytorch/pytorch#69687, open). On an H100 the eager tangent of Sana-Sprint 0.6B ran 255 convolutions against the
forward's 85 (docs/step-cost.md). No PyTorch switch skips them, hence this module: inside `skip_zero_products()` every
`F.linear` and `F.conv2d` call goes through an `autograd.Function` whose `jvp` sums only the terms of the tangents
that exist (`set_materialize_grads(False)` passes absent ones as None):

    linear:  dy = dx W^T [+ x dW^T] [+ db]
    conv2d:  dy = conv(dx, W) [+ conv(x, dW)] [+ db]      (same stride, padding, dilation, groups)

The tangent is the same sum without its + 0 terms (float64: equal to 1e-12; tests/test_skip_zero_tangents.py). The
primal is each layer called as a plain forward calls it, so under bf16 autocast F^- is the no-grad forward's to the
bit, where with PyTorch's rules forward AD decomposes each linear layer and rounds differently. On the CPU the eager
tangent of the Sana-Sprint 0.6B student went from 2.7-3.2x to 1.8-2.2x a forward over two runs (docs/step-cost.md).

The mode is for eager JVPs without gradient (the loss's tangent, under no_grad): the Functions have no backward, and
a call inside the mode on tensors that require grad, with grad enabled, stops with a message. `skipping_jvp` is the
loss's call: the JVP on dual tensors inside the mode (torch.func would spend more host time per layer than the
products save). Under `torch.compile` use `tbcm.zero_tangents` instead: Dynamo does not call a Function's `jvp`
inside `torch.func.jvp`.
"""

from __future__ import annotations

import collections

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode


def _add(a, b):
    return b if a is None else a + b


class _LinearJVP(torch.autograd.Function):
    """F.linear(x, weight, bias) with a forward-mode rule that skips absent tangents."""

    @staticmethod
    def forward(x, weight, bias):
        return F.linear(x, weight, bias)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.set_materialize_grads(False)
        ctx.save_for_forward(inputs[0], inputs[1])

    @staticmethod
    def jvp(ctx, dx, dweight, dbias):
        x, weight = ctx.saved_tensors
        out = None if dx is None else F.linear(dx, weight)
        if dweight is not None:
            out = _add(out, F.linear(x, dweight))
        if dbias is not None:
            out = _add(out, dbias)
        return out


class _Conv2dJVP(torch.autograd.Function):
    """F.conv2d(x, weight, bias, stride, padding, dilation, groups) with a forward-mode rule that skips absent
    tangents."""

    @staticmethod
    def forward(x, weight, bias, stride, padding, dilation, groups):
        return F.conv2d(x, weight, bias, stride, padding, dilation, groups)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.set_materialize_grads(False)
        ctx.save_for_forward(inputs[0], inputs[1])
        ctx.geometry = inputs[3:]

    @staticmethod
    def jvp(ctx, dx, dweight, dbias, *_):
        x, weight = ctx.saved_tensors
        out = None if dx is None else F.conv2d(dx, weight, None, *ctx.geometry)
        if dweight is not None:
            out = _add(out, F.conv2d(x, dweight, None, *ctx.geometry))
        if dbias is not None:
            out = _add(out, dbias[:, None, None])
        return out


_LINEAR = {"input": None, "weight": None, "bias": None}  # F.linear's parameters and defaults
_CONV2D = {"input": None, "weight": None, "bias": None, "stride": 1, "padding": 0, "dilation": 1, "groups": 1}


def _bind(signature: dict, args, kwargs) -> list:
    """The call's arguments in signature order, defaults filled in (both functions take keywords too; torch has
    checked them against the signature before the mode sees the call)."""
    given = dict(zip(signature, args)) | kwargs
    return [given.get(name, default) for name, default in signature.items()]


class skip_zero_products(TorchFunctionMode):
    """Context manager: inside it F.linear and F.conv2d (so nn.Linear and nn.Conv2d) skip the products of absent
    tangents in forward-mode AD; every other call passes through unchanged. For JVPs without gradient, on dual
    tensors (`skipping_jvp`) or under torch.func (the same tangent, more host time per layer):

        with torch.no_grad(), skip_zero_products():
            out, tangent = torch.func.jvp(model, primals, tangents)
    """

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.linear:
            return _apply(_LinearJVP, _bind(_LINEAR, args, kwargs))
        if func is F.conv2d:
            return _apply(_Conv2dJVP, _bind(_CONV2D, args, kwargs))
        return func(*args, **kwargs)

    def __exit__(self, *exc):
        # Autocast keeps each weight's low-precision copy for the rest of its region. A no-grad forward of an FSDP2
        # module under autocast inside any torch function mode (a pass-through one too; torch 2.14) left copies of
        # the gathered weights there without their link to the weights, and the training forward that followed in
        # the same region reused them: no gradient reached any block but the first (tests/test_distill_robustness.py,
        # FSDP against DDP in bf16). The JVP's casts are not needed after it; dropped here, they cannot be reused.
        try:
            return super().__exit__(*exc)
        finally:
            torch.clear_autocast_cache()


def _apply(fn, args):
    if torch.is_grad_enabled() and any(isinstance(a, torch.Tensor) and a.requires_grad for a in args):
        raise RuntimeError("skip_zero_products() is for JVPs without gradient, but a linear layer or convolution was "
                           "called inside it on tensors that require grad; run the JVP under torch.no_grad()")
    return fn.apply(*args)


def skipping_jvp(fn, primals: tuple, tangents: tuple) -> tuple[torch.Tensor, torch.Tensor]:
    """(fn(*primals), its derivative along `tangents`) for an `fn` that returns one tensor: torch.func.jvp's result,
    taken on dual tensors (`torch.autograd.forward_ad`) inside `skip_zero_products()`. For callers without gradient
    (the loss's tangent).

    Dual tensors rather than torch.func.jvp because torch.func runs a custom Function's forward-mode rule through
    Python wrappers: on the CPU one small linear layer's JVP took 0.81 ms of host time under torch.func.jvp with
    this mode, 0.17 ms on dual tensors, 0.50 ms with PyTorch's rules under torch.func.jvp; on the tiny Sana student
    at 4 pairs (launch-bound) the whole tangent took 90, 58 and 69 ms. A GPU's eager JVP is partly bound by that
    host time, so the skipped products must not cost it back."""
    fwad = torch.autograd.forward_ad
    with fwad.dual_level(), skip_zero_products():
        out = fn(*(fwad.make_dual(p, t) for p, t in zip(primals, tangents)))
        primal, tangent = fwad.unpack_dual(out)
    return primal, torch.zeros_like(primal) if tangent is None else tangent


class CountProducts(TorchDispatchMode):
    """Counts the ATen operators a call runs, below torch.func's wrappers (what the kernels do); `products` is its
    matrix products and convolutions. For the tests and `benchmarks/zero_products.py --eager`:

        with torch.no_grad(), CountProducts() as count:
            torch.func.jvp(model, primals, tangents)
        count.products, count.ops["convolution"]
    """

    PRODUCTS = ("mm", "addmm", "bmm", "baddbmm", "convolution")

    def __init__(self):
        super().__init__()
        self.ops = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops[func.overloadpacket.__name__] += 1
        return func(*args, **(kwargs or {}))

    @property
    def products(self) -> int:
        return sum(self.ops[name] for name in self.PRODUCTS)
