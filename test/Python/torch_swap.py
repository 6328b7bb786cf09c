#!/usr/bin/python3
"""Swap a torch model's sparse MoE blocks for the compiled op: `torch_swap.py`.

Two small models written in plain torch, with their MoE blocks laid out as
Hugging Face's MixtralSparseMoeBlock (gate, experts[i].w1/w2/w3, softmax
top-2, renormalised, silu-gated) and SwitchTransformersSparseMLP
(router.classifier, experts["expert_i"].wi/wo, top-1 scaled by the router
probability, relu), evaluated eagerly; then each block is replaced by
moe.torch_ops.CompiledMoE built from it, and the models' outputs are
compared (float32, <= 1e-5 relative to the largest output). Also checks
torch.ops.moe.layer directly and that it is registered with a Meta kernel.
"""

import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

import moe
import moe.torch_ops as mt


class MixtralExpert(nn.Module):
    def __init__(self, d, f):
        super().__init__()
        self.w1 = nn.Linear(d, f, bias=False)
        self.w2 = nn.Linear(f, d, bias=False)
        self.w3 = nn.Linear(d, f, bias=False)

    def forward(self, h):
        return self.w2(F.silu(self.w1(h)) * self.w3(h))


class MixtralBlock(nn.Module):
    def __init__(self, d, f, experts, top_k):
        super().__init__()
        self.top_k = top_k
        self.gate = nn.Linear(d, experts, bias=False)
        self.experts = nn.ModuleList(MixtralExpert(d, f) for _ in range(experts))

    def forward(self, hidden):
        b, s, d = hidden.shape
        h = hidden.reshape(-1, d)
        weights = F.softmax(self.gate(h), dim=1, dtype=torch.float)
        weights, chosen = torch.topk(weights, self.top_k, dim=-1)
        weights = weights / weights.sum(dim=-1, keepdim=True)
        out = torch.zeros_like(h)
        for e, expert in enumerate(self.experts):
            token, slot = torch.where(chosen == e)
            if token.numel():
                out.index_add_(0, token, expert(h[token]) * weights[token, slot, None])
        return out.reshape(b, s, d)


class SwitchExpert(nn.Module):
    def __init__(self, d, f):
        super().__init__()
        self.wi = nn.Linear(d, f, bias=False)
        self.wo = nn.Linear(f, d, bias=False)

    def forward(self, h):
        return self.wo(F.relu(self.wi(h)))


class SwitchRouter(nn.Module):
    def __init__(self, d, experts):
        super().__init__()
        self.classifier = nn.Linear(d, experts, bias=False)


class SwitchBlock(nn.Module):
    def __init__(self, d, f, experts):
        super().__init__()
        self.router = SwitchRouter(d, experts)
        self.experts = nn.ModuleDict({f"expert_{i}": SwitchExpert(d, f)
                                      for i in range(experts)})

    def forward(self, hidden):
        probs = F.softmax(self.router.classifier(hidden), dim=-1)
        top, index = probs.max(dim=-1)
        nxt = hidden.clone()
        for i, expert in enumerate(self.experts.values()):
            mask = index == i
            nxt[mask] = expert(hidden[mask])
        return top.unsqueeze(-1) * nxt


class Model(nn.Module):
    """Two pre-norm residual layers, each with an MoE block."""

    def __init__(self, d, make_block):
        super().__init__()
        self.norms = nn.ModuleList(nn.LayerNorm(d) for _ in range(2))
        self.blocks = nn.ModuleList(make_block() for _ in range(2))
        self.head = nn.Linear(d, d)

    def forward(self, x):
        for norm, block in zip(self.norms, self.blocks):
            x = x + block(norm(x))
        return self.head(x)


def compare(name, model, swap, x):
    with torch.no_grad():
        eager = model(x)
        for i, block in enumerate(model.blocks):
            model.blocks[i] = swap(block)
        compiled = model(x)
    err = ((compiled - eager).abs().max() / eager.abs().max()).item()
    if not err <= 1e-5:
        print(f"FAIL {name}: rel_err {err:.3g}")
        sys.exit(1)
    print(f"PASS {name}: rel_err={err:.2e}")


def main():
    torch.manual_seed(14)
    d, f = 32, 64
    x = torch.randn(2, 24, d)
    compare("mixtral_swap", Model(d, lambda: MixtralBlock(d, f, 8, 2)),
            lambda b: mt.CompiledMoE.from_mixtral_block(b, threads=1), x)
    compare("switch_swap", Model(d, lambda: SwitchBlock(d, f, 4)),
            lambda b: mt.CompiledMoE.from_switch_block(b, threads=1), x)

    # The op itself, and its Meta kernel (shape inference without running).
    block = MixtralBlock(d, f, 8, 2)
    compiled = mt.CompiledMoE.from_mixtral_block(block, threads=1)
    h = torch.randn(48, d)
    handle = compiled._handle(48)
    with torch.no_grad():
        y = torch.ops.moe.layer(h, handle)
        want = block(h.reshape(1, 48, d)).reshape(48, d)
    err = ((y - want).abs().max() / want.abs().max()).item()
    if not err <= 1e-5:
        print(f"FAIL op: rel_err {err:.3g}")
        sys.exit(1)
    with torch.no_grad():
        meta = torch.ops.moe.layer(torch.empty(48, d, device="meta"), handle)
    if meta.shape != (48, d) or meta.device.type != "meta":
        print("FAIL meta: wrong shape or device")
        sys.exit(1)
    print(f"PASS op: rel_err={err:.2e}, meta shape {tuple(meta.shape)}")
    # bfloat16 tokens, output and expert weights (torch.bfloat16 tensors
    # passed as their bits), against the eager block in float64 on the same
    # bfloat16-rounded tokens and weights.
    block = MixtralBlock(d, f, 8, 2)
    with torch.no_grad():
        for p in block.parameters():
            p.copy_(p.to(torch.bfloat16).to(torch.float32))
    compiled = mt.CompiledMoE.from_mixtral_block(
        block, threads=1, activation_dtype="bf16", weights_dtype="bf16")
    hb = torch.randn(48, d).to(torch.bfloat16)
    with torch.no_grad():
        y = compiled(hb)
        want = block.double()(hb.double().reshape(1, 48, d)).reshape(48, d)
    err = ((y.double() - want).abs().max() / want.abs().max()).item()
    if y.dtype != torch.bfloat16 or not err <= 2e-2:
        print(f"FAIL bf16: {y.dtype}, rel_err {err:.3g}")
        sys.exit(1)
    print(f"PASS bf16: rel_err={err:.2e} (bfloat16 output)")
    try:
        torch.ops.moe.layer(h, 999999)
    except Exception as e:  # the op wraps moe.Error in a RuntimeError
        if "no bound layer has handle 999999" not in str(e):
            print(f"FAIL bad handle: {e}")
            sys.exit(1)
        print("PASS bad_handle")
    else:
        print("FAIL bad handle: no error")
        sys.exit(1)
    print("ALL PASS")


if __name__ == "__main__":
    main()
