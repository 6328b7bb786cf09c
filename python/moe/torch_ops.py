"""PyTorch integration of the moe package.

    import moe.torch_ops as mt
    block = mt.CompiledMoE.from_mixtral_block(model.layers[0].block_sparse_moe)
    model.layers[0].block_sparse_moe = block       # forward: hidden -> hidden

`torch.ops.moe.layer(x, handle)` is a PyTorch custom op (torch.library,
CPU, with a Meta kernel for shape inference): x [tokens, d_model] in the
layer's activation type (float32 or bfloat16), `handle` the id of a bound layer
registered with `register(bound)`; it returns the layer's output. CompiledMoE
is an nn.Module that compiles its layer once per token count (and binds the
weights once), then calls the op; build it from a layer spec and weights in
our names, or from a Hugging Face-style Mixtral or Switch Transformers block.
Inference only: the op has no autograd formula.
"""

import itertools
import threading

import torch

import moe

_layers = {}
_ids = itertools.count(1)
_lock = threading.Lock()


def register(bound):
    """Registers a moe.BoundLayer for torch.ops.moe.layer; returns its handle."""
    with _lock:
        handle = next(_ids)
        _layers[handle] = bound
    return handle


def unregister(handle):
    with _lock:
        _layers.pop(handle, None)


def _layer_cpu(x, handle):
    bound = _layers.get(handle)
    if bound is None:
        raise moe.Error(f"moe: error: no bound layer has handle {handle} "
                        "(register it with moe.torch_ops.register)")
    x = x.contiguous()
    y = torch.empty_like(x)
    bound.call_into(x, y)
    return y


def _layer_meta(x, handle):
    return torch.empty_like(x)


# torch.library.Library: the registration API of every PyTorch from 1.13
# (Debian's) to 2.x.
_library = torch.library.Library("moe", "DEF")
_library.define("layer(Tensor x, int handle) -> Tensor")
_library.impl("layer", _layer_cpu, "CPU")
_library.impl("layer", _layer_meta, "Meta")
# PyTorch 1.13 has no autograd fallthrough for Meta tensors: shape inference
# goes to the Meta kernel directly (the op has no autograd formula).
try:
    _library.impl("layer", _layer_meta, "AutogradMeta")
except RuntimeError:  # a PyTorch that already provides it
    pass


class CompiledMoE(torch.nn.Module):
    """A sparse MoE block computed by a compiled moe layer.

    spec: the layer-spec dict; weights: tensors in our names and layouts
    (router [E, D], w_in [E, D, F], [w_gate [E, D, F],] w_out [E, F, D]).
    forward(hidden [..., d_model]) -> [..., d_model] on the CPU, in
    hidden's type; computed in float32, or in bfloat16 (tokens, output and
    expert weights) with activation_dtype="bf16". Compile options (backend,
    fusion, threads, activation_dtype, weights_dtype, cache_dir, ...) are
    passed to moe.compile.
    """

    def __init__(self, spec, weights, **compile_options):
        super().__init__()
        self.spec = dict(spec)
        self.weights = {name: w.detach().to(torch.float32).contiguous()
                        for name, w in weights.items()}
        self.compile_options = compile_options
        self.compute_dtype = (torch.bfloat16 if compile_options.get(
            "activation_dtype", "f32") == "bf16" else torch.float32)
        self._handles = {}

    def _handle(self, tokens):
        handle = self._handles.get(tokens)
        if handle is None:
            compiled = moe.compile(self.spec, tokens, **self.compile_options)
            handle = register(compiled.bind_weights(self.weights))
            self._handles[tokens] = handle
        return handle

    def forward(self, hidden_states):
        shape = hidden_states.shape
        x = hidden_states.reshape(-1, shape[-1]).to(self.compute_dtype)
        y = torch.ops.moe.layer(x, self._handle(x.shape[0]))
        return y.reshape(shape).to(hidden_states.dtype)

    def __del__(self):
        for handle in getattr(self, "_handles", {}).values():
            unregister(handle)

    @classmethod
    def from_mixtral_block(cls, block, **compile_options):
        """From a block laid out as Hugging Face's MixtralSparseMoeBlock:
        `gate` (Linear d_model -> E) and `experts[i].w1` (gate projection),
        `.w3` (up), `.w2` (down): softmax top-k routing, renormalised gates,
        silu-gated experts, dropless."""
        experts = list(block.experts)
        spec = {"d_model": block.gate.in_features,
                "d_ff": experts[0].w1.out_features,
                "num_experts": len(experts), "top_k": block.top_k,
                "activation": "swiglu", "normalize_gates": True,
                "capacity_factor": None}
        weights = {
            "router": block.gate.weight,
            "w_in": torch.stack([e.w3.weight.t() for e in experts]),
            "w_gate": torch.stack([e.w1.weight.t() for e in experts]),
            "w_out": torch.stack([e.w2.weight.t() for e in experts]),
        }
        return cls(spec, weights, **compile_options)

    @classmethod
    def from_switch_block(cls, mlp, capacity_factor=None, **compile_options):
        """From a block laid out as Hugging Face's
        SwitchTransformersSparseMLP: `router.classifier` (Linear d_model ->
        E) and `experts[name].wi` / `.wo`, relu, top-1 with the router
        probability as the gate. capacity_factor None: dropless (Hugging
        Face passes a dropped token through unchanged, the moe spec drops it
        to zero: compare them without drops)."""
        experts = list(mlp.experts.values()) if hasattr(mlp.experts, "values") \
            else list(mlp.experts)
        spec = {"d_model": mlp.router.classifier.in_features,
                "d_ff": experts[0].wi.out_features,
                "num_experts": len(experts), "top_k": 1, "activation": "relu",
                "normalize_gates": False, "capacity_factor": capacity_factor}
        weights = {
            "router": mlp.router.classifier.weight,
            "w_in": torch.stack([e.wi.weight.t() for e in experts]),
            "w_out": torch.stack([e.wo.weight.t() for e in experts]),
        }
        return cls(spec, weights, **compile_options)
