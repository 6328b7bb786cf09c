"""Prints what gpu_bench.py's --budget-s planning keeps for made-up round-1 costs
(gpu-bench-budget.test checks the lines against figures worked out by hand)."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "tools", "bench"))
import gpu_bench  # noqa: E402

found = ["ours", "ours (CUDA graph)", "ours (warp MMA)", "ours (128-row tiles)",
         "ours (32-k steps, 64 columns)", "PyTorch eager", "PyTorch grouped"]
order = gpu_bench.priority(found)
print("order:", " | ".join(order))
# A process of ours costs 10 s a round (weights loaded each time), a PyTorch
# peer 1 s: 52 s for a round of all seven.
cost = {who: 1.0 if who.startswith("PyTorch") else 10.0 for who in found}
for rounds, left in ((5, 1000), (5, 200), (5, 100), (5, 30), (5, 0), (2, 60), (1, 0)):
    keep, planned = gpu_bench.plan_rounds(cost, order, rounds, left)
    print(f"rounds {rounds} left {left}: {planned} rounds of {len(keep)}: {' | '.join(keep)}")
