#!/usr/bin/python3
"""The moe Python package against the float64 reference: `api.py WORKDIR`.

Compiles small layers through moe.compile (spec as a dict and as a file),
binds weights from numpy arrays and from a safetensors file, calls them on
numpy arrays, and checks: the outputs and statistics against reference.py
(which shares no code with the package), that the output array is the
caller's (no copy), concurrent calls from several threads, the on-disk
compiled-code cache across processes, and the one-line errors of bad input.
Prints PASS lines; exits non-zero at the first failure.
"""

import json
import os
import subprocess
import sys
import threading

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
import moe_io  # noqa: E402
import reference  # noqa: E402

import moe  # noqa: E402


def fail(what):
    print("FAIL: " + what)
    sys.exit(1)


def weights_for(spec, rng):
    e, d, f = spec["num_experts"], spec["d_model"], spec["d_ff"]
    w = {"router": rng.standard_normal((e, d)).astype(np.float32),
         "w_in": (rng.standard_normal((e, d, f)) / np.sqrt(d)).astype(np.float32),
         "w_out": (rng.standard_normal((e, f, d)) / np.sqrt(f)).astype(np.float32)}
    if spec["activation"] in ("swiglu", "geglu"):
        w["w_gate"] = (rng.standard_normal((e, d, f)) / np.sqrt(d)).astype(np.float32)
    return w


def check_against_reference(name, spec, w, x, y, stats):
    ref_y, ref_stats = reference.moe_layer(
        spec, x.astype(np.float64), w["router"].astype(np.float64),
        w["w_in"].astype(np.float64),
        w["w_gate"].astype(np.float64) if "w_gate" in w else None,
        w["w_out"].astype(np.float64))
    err = np.max(np.abs(y - ref_y)) / max(np.max(np.abs(ref_y)), 1e-30)
    if not err <= 1e-5:
        fail(f"{name}: rel_err {err:.3g} against the float64 reference")
    if list(stats["tokens_per_expert"]) != list(ref_stats["tokens_per_expert"]):
        fail(f"{name}: tokens_per_expert {stats['tokens_per_expert']} != "
             f"{list(ref_stats['tokens_per_expert'])}")
    if stats["dropped"] != ref_stats["dropped"]:
        fail(f"{name}: dropped {stats['dropped']} != {ref_stats['dropped']}")
    for key in ("load_balance_loss", "router_z_loss"):
        if abs(stats[key] - ref_stats[key]) > 1e-4 * max(1.0, abs(ref_stats[key])):
            fail(f"{name}: {key} {stats[key]} != {ref_stats[key]}")
    print(f"PASS {name}: rel_err={err:.2e} dropped={stats['dropped']}")


def expect_error(name, call, text):
    try:
        call()
    except moe.Error as e:
        message = str(e)
        if text not in message or "\n" in message:
            fail(f"{name}: error {message!r} lacks {text!r}")
        print(f"PASS {name}: {message}")
        return
    fail(f"{name}: no error")


def main():
    work = sys.argv[1]
    os.makedirs(work, exist_ok=True)
    rng = np.random.default_rng(1402)

    # A capacity-bounded relu layer, spec as a dict, weights as arrays.
    spec = {"d_model": 16, "d_ff": 32, "num_experts": 4, "top_k": 2,
            "activation": "relu", "capacity_factor": 1.0, "group_size": 8}
    tokens = 32
    w = weights_for(spec, rng)
    layer = moe.compile(spec, tokens=tokens, threads=1)
    if (layer.d_model, layer.d_ff, layer.num_experts, layer.tokens) != (16, 32, 4, tokens):
        fail("description of the compiled layer")
    bound = layer.bind_weights(w)
    x = rng.standard_normal((tokens, 16)).astype(np.float32)
    y, stats = bound(x)
    check_against_reference("relu_capacity_arrays", spec, w, x, y, stats)

    # The output is the caller's array, written in place.
    out = np.full_like(x, np.nan)
    y2, _ = bound(x, out=out)
    if y2 is not out or not np.array_equal(out, y):
        fail("out= is not written in place")
    print("PASS out_in_place")

    # Several Python threads call the same bound layer at once.
    xs = [rng.standard_normal((tokens, 16)).astype(np.float32) for _ in range(4)]
    expected = [bound(xi)[0] for xi in xs]
    results = [None] * len(xs)

    def worker(i):
        for _ in range(20):
            results[i] = bound(xs[i])[0]
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(xs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, r in enumerate(results):
        if not np.array_equal(r, expected[i]):
            fail(f"concurrent call {i} differs from the sequential one")
    print("PASS concurrent_calls: 4 threads x 20 calls")

    # A gated dropless layer: spec file, weights from safetensors.
    gated = {"d_model": 24, "d_ff": 40, "num_experts": 8, "top_k": 2,
             "activation": "swiglu", "normalize_gates": True, "capacity_factor": None}
    spec_path = os.path.join(work, "gated.json")
    with open(spec_path, "w") as f:
        json.dump(gated, f)
    wg = weights_for(gated, rng)
    weights_path = os.path.join(work, "gated.safetensors")
    moe_io.write_safetensors(weights_path, wg)
    xg = rng.standard_normal((16, 24)).astype(np.float32)
    bound_g = moe.compile(spec_path, tokens=16).bind_weights(weights_path)
    yg, sg = bound_g(xg)
    check_against_reference("swiglu_dropless_file", gated, wg, xg, yg, sg)

    # The compiled-code cache: a second process loads what the first stored.
    cache = os.path.join(work, "cache")
    script = ("import sys, json, numpy as np, moe\n"
              "l = moe.compile(sys.argv[1], tokens=16, cache_dir=sys.argv[2])\n"
              "y, s = l.bind_weights(sys.argv[3])(np.load(sys.argv[4]))\n"
              "np.save(sys.argv[5], y)\n"
              "print(json.dumps({'from_cache': l.from_cache}))\n")
    np.save(os.path.join(work, "xg.npy"), xg)
    seen = []
    for run in range(2):
        out_path = os.path.join(work, f"cached{run}.npy")
        done = subprocess.run([sys.executable, "-c", script, spec_path, cache,
                               weights_path, os.path.join(work, "xg.npy"), out_path],
                              capture_output=True, text=True, env=os.environ)
        if done.returncode != 0:
            fail(f"cache run {run}: {done.stderr.strip()}")
        seen.append(json.loads(done.stdout.strip().splitlines()[-1])["from_cache"])
        if not np.array_equal(np.load(out_path), yg):
            fail(f"cache run {run}: output differs from the uncached layer")
    if seen != [False, True]:
        fail(f"cache: from_cache was {seen}, expected [False, True]")
    entries = sorted(os.listdir(cache))
    if len(entries) != 2 or not entries[0].endswith(".json") or not entries[1].endswith(".o"):
        fail(f"cache holds {entries}")
    print("PASS compile_cache: second process loaded the code from the cache")

    # A corrupt cache entry is reported and compiled again.
    with open(os.path.join(cache, entries[1]), "wb") as f:
        f.write(b"not an object file")
    done = subprocess.run([sys.executable, "-c", script, spec_path, cache, weights_path,
                           os.path.join(work, "xg.npy"), os.path.join(work, "c2.npy")],
                          capture_output=True, text=True, env=os.environ)
    if done.returncode != 0 or "unusable cache entry" not in done.stderr:
        fail(f"corrupt cache entry: rc {done.returncode}, stderr {done.stderr!r}")
    if not np.array_equal(np.load(os.path.join(work, "c2.npy")), yg):
        fail("corrupt cache entry: output differs")
    print("PASS corrupt_cache_entry: warned and compiled again")

    # Bad input: one line, moe.Error.
    expect_error("wrong_tokens", lambda: bound(xs[0][:8]),
                 "the input is f32[8, 16], the layer takes f32[32, 16]")
    expect_error("wrong_dtype", lambda: bound(xs[0].astype(np.float64)),
                 "the layer takes f32[32, 16]")
    expect_error("missing_weight",
                 lambda: layer.bind_weights({k: v for k, v in w.items() if k != "w_out"}),
                 "missing weight 'w_out'")
    expect_error("bad_weight_shape",
                 lambda: layer.bind_weights(dict(w, w_in=w["w_in"][:, :, :31])),
                 "weight 'w_in' has shape [4, 16, 31], expected [4, 16, 32]")
    expect_error("unused_weight", lambda: layer.bind_weights(dict(w, w_gate=w["w_in"])),
                 "weight 'w_gate' is given but the layer does not use it")
    expect_error("unknown_weight", lambda: layer.bind_weights(dict(w, bias=w["router"])),
                 "unknown weight 'bias'")
    expect_error("bad_spec", lambda: moe.compile(dict(spec, top_k=9), tokens=tokens),
                 "top_k")
    expect_error("bad_backend", lambda: moe.compile(spec, tokens=tokens, backend="tpu"),
                 "unknown backend 'tpu'")
    expect_error("graph_on_cpu",
                 lambda: moe.compile(spec, tokens=tokens, cuda_graph=True),
                 "--cuda-graph with --backend cpu")
    expect_error("missing_spec_file", lambda: moe.compile(os.path.join(work, "none.json"),
                                                         tokens=8),
                 "No such file or directory")
    nan_x = xs[0].copy()
    nan_x[3, 5] = np.nan
    expect_error("non_finite_tokens", lambda: bound(nan_x), "token 3 holds NaN")
    print("ALL PASS")


if __name__ == "__main__":
    main()
