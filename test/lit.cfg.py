# lit configuration of the moe regression suite.
import os
import shutil
import subprocess

import lit.formats

config.name = "MOE"
config.test_format = lit.formats.ShTest(execute_external=True)
config.suffixes = [".mlir", ".test"]
# Fuzz: the libFuzzer seed corpora hold .mlir inputs, not tests.
config.excludes = ["Inputs", "Fuzz", "CMakeLists.txt", "lit.cfg.py", "lit.site.cfg.py"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.moe_obj_root, "test")

# Our tools first, then FileCheck, not, split-file from LLVM 22.
path = os.pathsep.join([config.moe_tools_dir, config.llvm_tools_dir,
                        config.environment.get("PATH", os.environ["PATH"])])
config.environment["PATH"] = path
# Captured FileCheck variables do not leak across CHECK-LABELs.
config.environment["FILECHECK_OPTS"] = "--enable-var-scope"
# Test helpers use Debian's python3, where python3-numpy is installed.
config.substitutions.append(("%python", "/usr/bin/python3"))

# The stand-in CUDA driver (test/GPU/FakeDriver): `%fakecuda` runs a command
# with it instead of the real libcuda.so.1.
config.substitutions.append(
    ("%fakecuda", "env LD_LIBRARY_PATH=" + config.moe_fake_cuda_dir))

# MLIR's C runner utilities, for programs run with mlir-runner.
config.substitutions.append(
    ("%mlir_c_runner_utils",
     os.path.join(os.path.dirname(config.llvm_tools_dir), "lib",
                  "libmlir_c_runner_utils.so")))

# The build, for scripts that use its tools (tools/gpu_package.sh).
config.substitutions.append(("%moe_build", config.moe_obj_root))
config.substitutions.append(("%moe_src", config.moe_src_root))

# Tests under Sharding/ launch mpirun; they run one at a time.
lit_config.parallelism_groups["mpi"] = 1

# ptxas validates emitted PTX; `cuda` means the CUDA backend is built and a
# GPU answers here (otherwise the GPU tests report UNSUPPORTED: skipped).
if os.path.exists("/usr/local/cuda/bin/ptxas"):
    config.available_features.add("ptxas")
smi = shutil.which("nvidia-smi")
if config.moe_have_cuda and smi and subprocess.run([smi, "-L"], capture_output=True).returncode == 0:
    config.available_features.add("cuda")
elif not config.moe_have_cuda:
    lit_config.note("GPU tests skipped (UNSUPPORTED): this build has no CUDA backend")
else:
    lit_config.note("GPU tests that run kernels skipped (UNSUPPORTED): no GPU answers "
                    "here (nvidia-smi -L); PTX and cubin emission are still checked")
# nvdisasm (the toolkit's, or NVIDIA's PyPI package that tools/setup.sh
# installs under /opt/moe-tools) shows the SASS of the tensor-core kernels.
nvdisasm = "/usr/local/cuda/bin/nvdisasm"
if not os.path.exists(nvdisasm):
    import glob
    found = glob.glob("/opt/moe-tools/nvdisasm/**/bin/nvdisasm", recursive=True)
    nvdisasm = found[0] if found else ""
if nvdisasm:
    config.available_features.add("nvdisasm")
    config.substitutions.append(("%nvdisasm", nvdisasm))
elif "ptxas" in config.available_features:
    lit_config.note("SASS tests skipped (UNSUPPORTED): no nvdisasm (tools/setup.sh "
                    "installs it from PyPI)")
if "ptxas" not in config.available_features:
    lit_config.note("GPU code emission tests skipped (UNSUPPORTED): no "
                    "/usr/local/cuda/bin/ptxas")

# Debian's python3-torch (tools/setup.sh installs it) enables the PyTorch op
# test and the benchmark self-tests.
if subprocess.run(["/usr/bin/python3", "-c", "import torch"],
                  capture_output=True).returncode == 0:
    config.available_features.add("torch")
# Debian's python3-matplotlib draws the benchmarks' plots (tools/bench/plot.py).
if subprocess.run(["/usr/bin/python3", "-c", "import matplotlib"],
                  capture_output=True).returncode == 0:
    config.available_features.add("matplotlib")

# A sanitized build (-DMOE_SANITIZE=...): tests that check how a binary is
# linked do not hold (the sanitizer runtimes bring libstdc++ and their own
# libraries).
if getattr(config, "moe_sanitize", ""):
    config.available_features.add("sanitized")

# The moe Python package, where the build made it (pybind11-dev and
# python3-dev were found).
if os.path.exists(os.path.join(config.moe_obj_root, "python", "moe", "__init__.py")):
    config.available_features.add("python-package")

# util-linux's `script` runs a command on a pseudo-terminal (progress lines).
if shutil.which("script"):
    config.available_features.add("script")
