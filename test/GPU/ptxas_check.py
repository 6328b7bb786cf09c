"""Validate the PTX that `moe-translate --moe-to-ptx` prints: split it at the
`// gpu.module @NAME (CHIP)` markers and assemble each module with ptxas for its
chip. Prints `ptxas: N modules OK` or the first failure, and exits non-zero
when any module is rejected or none is found."""
import os
import re
import subprocess
import sys
import tempfile


def main():
    ptx_path, ptxas = sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "ptxas"
    with open(ptx_path) as f:
        text = f.read()
    parts = re.split(r"^// gpu\.module @(\S+) \((sm_\w+)\)\n", text, flags=re.M)
    modules = [(parts[i], parts[i + 1], parts[i + 2]) for i in range(1, len(parts) - 2, 3)]
    if not modules:
        print("ptxas: no gpu.module in the input")
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        for name, chip, ptx in modules:
            source = os.path.join(tmp, name + ".ptx")
            with open(source, "w") as f:
                f.write(ptx)
            result = subprocess.run([ptxas, "-arch=" + chip, source, "-o",
                                     os.path.join(tmp, name + ".cubin")],
                                    capture_output=True, text=True)
            if result.returncode != 0:
                print(f"ptxas: {name} rejected for {chip}: {result.stderr.strip()}")
                return 1
    print(f"ptxas: {len(modules)} modules OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
