"""Assemble the tensor-core kernels of `moe-translate --moe-to-ptx` output and
report what the machine code holds. The PTX is split at its
`// gpu.module @NAME (CHIP)` markers; every module with an `mma.sync` or a
`wgmma.mma_async` (with `--match REGEX`, every module whose PTX the regular
expression finds) is assembled by ptxas -v for its chip and disassembled by nvdisasm, and one line
per module gives the counts of its tensor-core, shared-memory (ldmatrix and plain loads),
asynchronous global-to-shared copy (LDGSTS), barrier, mbarrier (arrivals of copies, phase checks),
reduction and local-memory instructions and ptxas' register and spill
figures, then the f32 fused multiply-adds (FFMA), the 128-bit shared loads
(LDS.128) and, where there are warpgroup MMAs, their waits by the number of
MMA groups each leaves running (WGMMA-WAIT-N for WARPGROUP.DEPBAR.LE gsb0, N)
and the reduction loop's instructions per m64n64k16 of MMA work (LOOP-ISSUE,
see loop_issue):

  NAME CHIP: HMMA.16816.F32.BF16 x32 LDSM x18 LDS x0 LDGSTS x12 BAR.SYNC x1 LDL x0 STL x0 ARRIVES.LDGSTSBAR x0 SYNCS.PHASECHK x0 RED x0 registers 128 spill-stores 0 spill-loads 0 FFMA x0 LDS.128 x0

Usage: sass_check.py PTX [--ptxas PATH] [--nvdisasm PATH] [--match REGEX].
Exits non-zero when ptxas rejects a module or no module is selected."""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile


def counts(sass):
    """Instruction counts by opcode family in nvdisasm's text, without the
    never-executed padding ptxas puts before asynchronous copies
    (`@!PT LDS RZ, [RZ]`)."""
    sass = "\n".join(line for line in sass.splitlines() if "@!PT" not in line)
    result = {}
    mma = re.findall(r"\bH(?:G)?MMA\.[0-9A-Za-z.]+", sass)
    for op in sorted(set(mma)):
        result[op] = mma.count(op)
    for op in ("LDSM", "LDS", "LDGSTS", "BAR.SYNC", "LDL", "STL"):
        result[op] = len(re.findall(r"\b" + re.escape(op) + r"\b", sass))
    # mbarriers: arrivals when a thread's asynchronous copies land, and
    # phase checks (the waits).
    result["ARRIVES.LDGSTSBAR"] = len(re.findall(r"\bARRIVES\.LDGSTSBAR\b", sass))
    result["SYNCS.PHASECHK"] = len(re.findall(r"\bSYNCS\.PHASECHK\b", sass))
    # Global reductions: RED (sm_80) or REDG (sm_90).
    result["RED"] = len(re.findall(r"\bREDG?\.E\.ADD\.F32", sass))
    return result


def loop_issue(sass):
    """Instructions per m64n64k16 of warpgroup MMA work (an HGMMA.64xNx16
    counts N / 64) in the reduction loop: the backward branch whose body,
    from its target label to it, holds the most HGMMA work (the fewest
    instructions among equals); None without HGMMA. Each of a warpgroup's
    four warps issues the whole loop on its own scheduler while an
    m64n64k16 keeps the SM's tensor cores about 32 cycles busy, so above
    about 32 the issue, not the tensor cores, sets the pace."""
    lines = sass.splitlines()
    instructions = [(i, l) for i, l in enumerate(lines)
                    if re.search(r"/\*[0-9a-f]{4}\*/", l) and "@!PT" not in l]
    labels = {m.group(1): i for i, l in enumerate(lines)
              for m in [re.match(r"^(\.L_x_\d+):", l)] if m}

    def work(line):
        m = re.search(r"\bHGMMA\.64x(\d+)x16", line)
        return int(m.group(1)) / 64 if m else 0

    best = None
    for i, line in instructions:
        m = re.search(r"BRA `\((\.L_x_\d+)\)", line)
        if not m or labels.get(m.group(1), i) >= i:
            continue
        body = [l for j, l in instructions if labels[m.group(1)] <= j <= i]
        units = sum(work(l) for l in body)
        if units and (best is None or (units, -len(body)) > (best[0], -best[1])):
            best = (units, len(body))
    return None if best is None else best[1] / best[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("ptx")
    parser.add_argument("--ptxas", default="ptxas")
    parser.add_argument("--nvdisasm", default=os.environ.get("MOE_NVDISASM", "nvdisasm"))
    parser.add_argument("--match", default=r"mma\.sync|wgmma\.mma_async",
                        help="the modules to check: a regular expression their PTX holds")
    args = parser.parse_args()
    if not shutil.which(args.nvdisasm):
        print(f"sass_check: no nvdisasm at '{args.nvdisasm}'")
        return 1
    with open(args.ptx) as f:
        text = f.read()
    parts = re.split(r"^// gpu\.module @(\S+) \((sm_\w+)\)\n", text, flags=re.M)
    modules = [(parts[i], parts[i + 1], parts[i + 2]) for i in range(1, len(parts) - 2, 3)]
    found = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name, chip, ptx in modules:
            if not re.search(args.match, ptx):
                continue
            found += 1
            source = os.path.join(tmp, name + ".ptx")
            cubin = os.path.join(tmp, name + ".cubin")
            with open(source, "w") as f:
                f.write(ptx)
            assembled = subprocess.run([args.ptxas, "-v", "-arch=" + chip, source, "-o", cubin],
                                       capture_output=True, text=True)
            if assembled.returncode != 0:
                print(f"sass_check: {name} rejected for {chip}: {assembled.stderr.strip()}")
                return 1
            info = assembled.stderr
            registers = re.search(r"Used (\d+) registers", info)
            stores = re.search(r"(\d+) bytes spill stores", info)
            loads = re.search(r"(\d+) bytes spill loads", info)
            sass = subprocess.run([args.nvdisasm, cubin], capture_output=True, text=True,
                                  check=True).stdout
            figures = " ".join(f"{op} x{n}" for op, n in counts(sass).items())
            ffma = len(re.findall(r"\bFFMA\b", sass))
            wide_shared = len(re.findall(r"\bLDS\.128\b", sass))
            # Warpgroup MMA waits, by the number of MMA groups each leaves
            # pending (WARPGROUP.DEPBAR.LE gsb0, N).
            waits = re.findall(r"\bWARPGROUP\.DEPBAR\.LE\s+gsb0\s*,\s*0x([0-9a-f]+)", sass)
            pending = sorted({int(n, 16) for n in waits}, reverse=True)
            wait_figures = "".join(f" WGMMA-WAIT-{n} x{waits.count(format(n, 'x'))}"
                                   for n in pending)
            issue = loop_issue(sass)
            issue_figure = "" if issue is None else f" LOOP-ISSUE {issue:.1f}"
            print(f"{name} {chip}: {figures} registers {registers.group(1) if registers else '?'}"
                  f" spill-stores {stores.group(1) if stores else '?'}"
                  f" spill-loads {loads.group(1) if loads else '?'}"
                  f" FFMA x{ffma} LDS.128 x{wide_shared}{wait_figures}{issue_figure}")
    if not found:
        print(f"sass_check: no module of the input matches '{args.match}'")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
