"""The products of zero tangents, dropped from compiled JVPs (an inductor graph pass).

PyTorch's forward-mode rule for a product is `da @ b + a @ db`, and a tensor without a tangent (a frozen
weight; the keys and values made from the text) gets a tangent of zeros, which is materialised: each linear
layer's JVP runs three matrix products instead of two (`x @ W.T`, `dx @ W.T` and `x @ 0`), each convolution
three convolutions, each batched product with a constant three (an open PyTorch issue, pytorch/pytorch#69687).
Eager forward AD launches them all; traced by `torch.compile` they appear as `mm(x, expand(full(0)))` and
inductor keeps them: a Sana block's compiled JVP ran 41 matrix products and convolutions where its forward runs
13. No library removes them, so this pass does: before inductor's own post-grad passes, a matrix product or
convolution with an operand that is zero by construction (`full(0)` or `zeros`, through views and casts) becomes
zeros of its shape, which the elementwise add consuming it absorbs; the same block's JVP then runs 30 (the 4 above
twice the forward's are the attention rule, written out where the forward calls fused attention), and on the CPU
the student's compiled tangent took 1.8x its compiled forward instead of 2.6x (docs/step-cost.md). It acts only
in the graphs compiled with `drop_zero_products()`'s options. x @ 0 = 0 for finite x; a non-finite activation
already makes the primal, and so the loss, non-finite (the step is skipped).
"""

from __future__ import annotations

import torch
from torch import fx
from torch._inductor.custom_graph_pass import CustomGraphPass, get_hash_for_files


_PRODUCTS = ("mm", "bmm", "convolution")
# ops whose output is zero wherever their (first) input is: views, copies, casts
_ZERO_PRESERVING = ("expand", "permute", "view", "reshape", "_unsafe_view", "t", "transpose", "unsqueeze", "squeeze",
                    "clone", "alias", "convert_element_type", "_to_copy", "contiguous", "slice", "select", "repeat")


def _op(node: fx.Node) -> str:
    t = node.target
    name = getattr(t, "__name__", str(t))  # e.g. "mm.default", "convert_element_type.default"
    return name.split(".")[0]


def _is_zero(node) -> bool:
    if not isinstance(node, fx.Node) or node.op != "call_function":
        return False
    op = _op(node)
    if op in ("zeros", "zeros_like", "new_zeros"):
        return True
    if op == "full":
        return len(node.args) > 1 and not isinstance(node.args[1], fx.Node) and node.args[1] == 0
    if op in _ZERO_PRESERVING and node.args:
        return _is_zero(node.args[0])
    return False


def _zeros_like_output(graph: fx.Graph, node: fx.Node) -> fx.Node:
    val = node.meta["val"]
    with graph.inserting_before(node):
        z = graph.call_function(torch.ops.aten.full.default, (list(val.shape), 0),
                                {"dtype": val.dtype, "layout": torch.strided, "device": val.device,
                                 "pin_memory": False})
    z.meta["val"] = val.new_zeros(val.shape)
    return z


def zero_products(graph: fx.Graph) -> int:
    """Replace every product with an operand that is zero by construction by zeros of its shape, in place;
    returns how many. A convolution's bias must be zero or absent too (else the result is the bias)."""
    n = 0
    for node in list(graph.nodes):
        if node.op != "call_function" or _op(node) not in _PRODUCTS or "val" not in node.meta:
            continue
        a, b = node.args[0], node.args[1]
        if not (_is_zero(a) or _is_zero(b)):
            continue
        if _op(node) == "convolution" and node.args[2] is not None and not _is_zero(node.args[2]):
            continue
        node.replace_all_uses_with(_zeros_like_output(graph, node))
        graph.erase_node(node)
        n += 1
    if n:
        graph.eliminate_dead_code()
    return n


class DropZeroProducts(CustomGraphPass):
    """`zero_products` as an inductor post-grad pass (`torch.compile(..., options=drop_zero_products())`)."""

    def __init__(self):
        self.dropped = 0  # products removed in the graphs compiled with this pass, summed (for tests and reports)

    def __call__(self, graph: fx.Graph) -> None:
        self.dropped += zero_products(graph)

    def uuid(self):  # inductor's graph cache keys on this: the pass's source
        return get_hash_for_files((__file__,))


ZERO_PRODUCTS = DropZeroProducts()


def drop_zero_products() -> dict:
    """torch.compile `options` that run the pass before inductor's own post-grad passes (which would fold a zero
    product into an addmm's bias)."""
    return {"post_grad_custom_pre_pass": ZERO_PRODUCTS}
