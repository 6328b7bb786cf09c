"""`compare_npy.py A.npy B.npy TOL`: prints `match: rel_diff=...` when the relative
Frobenius difference of two float32 arrays is at most TOL, else `MISMATCH ...` and
exits 1."""
import sys

import numpy as np


def main():
    a = np.load(sys.argv[1]).astype(np.float64)
    b = np.load(sys.argv[2]).astype(np.float64)
    tol = float(sys.argv[3])
    if a.shape != b.shape:
        print(f"MISMATCH shapes {a.shape} != {b.shape}")
        return 1
    diff = float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))
    if not diff <= tol:
        print(f"MISMATCH rel_diff={diff:.3e} > {tol:g}")
        return 1
    print(f"match: rel_diff={diff:.3e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
