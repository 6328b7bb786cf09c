"""moe: compile a mixture-of-experts layer once, bind its weights once, call it.

    import numpy as np, moe
    layer = moe.compile("switch-base-8.json", tokens=1024)    # or a dict
    bound = layer.bind_weights("switch-base-8.safetensors")   # or a dict of arrays
    y, stats = bound(np.random.randn(1024, 768).astype(np.float32))

Tokens and outputs are [tokens, d_model] numpy arrays or CPU torch tensors
of the layer's activation type (float32 by default; bfloat16 with
compile(..., activation_dtype="bf16"): torch.bfloat16 tensors, or numpy
uint16 arrays holding bfloat16 bits); they are passed to the compiled code
without a copy. Weights are
given as a safetensors file (our names or Hugging Face names) or a dict of
arrays/tensors under our names (router [E, D], w_in [E, D, F], w_gate
[E, D, F] when gated, w_out [E, F, D], ...), converted and packed once when
bound. Errors raise moe.Error with one line naming what is wrong.

`moe.torch_ops` registers the PyTorch custom op torch.ops.moe.layer and a
module that replaces a model's sparse MoE block.
"""

import json as _json
import os as _os

from . import _moe

Error = _moe.Error

__all__ = ["compile", "CompiledLayer", "BoundLayer", "Error"]


def _numpy_of(value, name, writable=False):
    """A numpy view of a numpy array or a CPU torch tensor (no copy)."""
    import numpy as np
    if isinstance(value, np.ndarray):
        return value
    if hasattr(value, "detach") and hasattr(value, "numpy"):  # torch.Tensor
        if value.device.type != "cpu":
            raise Error(f"moe: error: {name} is on {value.device}; the bound "
                        "layer takes CPU tensors")
        if value.requires_grad and writable:
            raise Error(f"moe: error: {name} requires grad")
        value = value.detach()
        if str(value.dtype) == "torch.bfloat16":  # numpy has no bfloat16
            import torch
            return value.view(torch.int16).numpy().view(np.uint16)
        return value.numpy()
    raise Error(f"moe: error: {name} is a {type(value).__name__}; expected a "
                "numpy array or a torch tensor")


class BoundLayer:
    """A compiled layer with its weights. Call it on tokens."""

    def __init__(self, bound, layer):
        self._bound = bound
        self.layer = layer

    def __call__(self, x, out=None, allow_non_finite=False):
        """y, stats = layer(x): x [tokens, d_model] in the activation type
        (numpy or CPU torch); y of the same kind, newly allocated unless `out` is given;
        stats a dict (capacity, tokens_per_expert, dropped,
        load_balance_loss, router_z_loss)."""
        if out is None:
            if hasattr(x, "new_empty"):  # torch: a tensor of the same kind
                out = x.new_empty(x.shape)
            else:
                import numpy as np
                out = np.empty_like(x)
        stats = self.call_into(x, out, allow_non_finite)
        return out, stats

    def call_into(self, x, out, allow_non_finite=False):
        """Writes the layer's output for x into `out`; returns the stats."""
        return self._bound.call_into(_numpy_of(x, "the input"),
                                     _numpy_of(out, "the output", True),
                                     allow_non_finite)

    def time_calls(self, x, out, runs):
        """Seconds of each of `runs` calls made in a C++ loop (no Python in
        between): the layer's own time, to measure Python's overhead."""
        return self._bound.time_calls(_numpy_of(x, "the input"),
                                      _numpy_of(out, "the output", True), runs)


class CompiledLayer:
    """A layer compiled for a fixed number of tokens per call."""

    def __init__(self, compiled):
        self._compiled = compiled

    d_model = property(lambda self: self._compiled.d_model)
    d_ff = property(lambda self: self._compiled.d_ff)
    num_experts = property(lambda self: self._compiled.num_experts)
    tokens = property(lambda self: self._compiled.tokens)
    capacity = property(lambda self: self._compiled.capacity)
    compile_seconds = property(lambda self: self._compiled.compile_seconds)
    from_cache = property(lambda self: self._compiled.from_cache)

    def bind_weights(self, weights, prefix="", allow_non_finite=False):
        """Binds a safetensors file (path) or a dict name -> array/tensor in
        our names and layouts. Returns a BoundLayer."""
        if isinstance(weights, (str, _os.PathLike)):
            bound = self._compiled.bind_file(_os.fspath(weights), prefix,
                                             allow_non_finite)
        elif isinstance(weights, dict):
            import numpy as np
            arrays = {name: np.ascontiguousarray(_numpy_of(value, f"weight '{name}'"))
                      for name, value in weights.items()}
            bound = self._compiled.bind_arrays(arrays, allow_non_finite)
        else:
            raise Error("moe: error: weights must be a safetensors path or a "
                        f"dict of arrays, not a {type(weights).__name__}")
        return BoundLayer(bound, self)


def compile(spec, tokens, backend="cpu", *, fusion=True, threads=0,
            opt_level=3, activation_dtype="f32", weights_dtype="f32",
            runtime_checks=False, cache_dir=None, progress=True,
            gpu_chip="sm_90a", cuda_graph=False):
    """Compiles a layer for calls of `tokens` tokens.

    spec: a layer-spec JSON path, its text, or a dict of its fields.
    backend: cpu (default) or gpu-loops. activation_dtype: the tokens' and
    the output's type with a spec (f32 or bf16; a module fixes its own).
    weights_dtype: the expert weights' type in the compiled code (f32, bf16, f16; moe.weights_dtype_of(path)
    reads a file's). cache_dir: the compiled-code cache (default:
    $MOE_CACHE_DIR, none when unset): a later process compiling the same
    layer with the same options loads the code instead. cuda_graph (backend
    cuda): the first call is recorded as a CUDA graph and replayed for every
    later call.
    """
    options = _moe.CompileOptions()
    options.backend = backend
    options.fusion = fusion
    options.threads = threads
    options.opt_level = opt_level
    options.activation_dtype = activation_dtype
    options.weights_dtype = weights_dtype
    options.runtime_checks = runtime_checks
    options.cache_dir = cache_dir or ""
    options.progress = progress
    options.gpu_chip = gpu_chip
    options.cuda_graph = cuda_graph
    if isinstance(spec, dict):
        compiled = _moe.compile_spec_text(_json.dumps(spec), tokens, options,
                                          "<spec>")
    elif isinstance(spec, str) and spec.lstrip().startswith("{"):
        compiled = _moe.compile_spec_text(spec, tokens, options, "<spec>")
    elif isinstance(spec, (str, _os.PathLike)):
        path = _os.fspath(spec)
        if path.endswith(".mlir"):
            compiled = _moe.compile_module(path, options)
        else:
            compiled = _moe.compile_spec(path, tokens, options)
    else:
        raise Error("moe: error: spec must be a path, JSON text or a dict, "
                    f"not a {type(spec).__name__}")
    return CompiledLayer(compiled)


def weights_dtype_of(path, prefix=""):
    """The expert weights' element type stored in a safetensors file."""
    return _moe.weights_dtype_of(_os.fspath(path), prefix)
