#!/usr/bin/env bash
# Installs, by package name with apt-get, every system package the moe
# toolchain needs. Idempotent: packages already present are not touched, and
# nothing is downloaded outside the package managers. Reports whether the
# optional CUDA Toolkit is at /usr/local/cuda; where it is and has no
# nvdisasm (the SASS tests' disassembler), installs NVIDIA's
# nvidia-cuda-nvdisasm package from PyPI with pip into /opt/moe-tools.
set -euo pipefail

packages=(
  cmake ninja-build g++ python3
  llvm-22-dev libmlir-22-dev mlir-22-tools llvm-22-tools
  nlohmann-json3-dev libgtest-dev
  libopenmpi-dev openmpi-bin
  python3-numpy libomp-22-dev
  clang-22 libclang-rt-22-dev
  pybind11-dev python3-dev python3-torch python3-matplotlib
)

missing=()
for pkg in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages are installed"
else
  echo "setup: installing ${missing[*]}"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if [ -x /usr/local/cuda/bin/ptxas ]; then
  echo "setup: CUDA Toolkit found at /usr/local/cuda ($(/usr/local/cuda/bin/ptxas --version | tail -n 1)); GPU parts will build"
else
  echo "setup: no CUDA Toolkit at /usr/local/cuda; GPU parts are skipped"
fi

# nvdisasm shows the SASS of the tensor-core kernels (test/GPU/tensor-core-sass.test).
nvdisasm_dir=/opt/moe-tools/nvdisasm
if [ -x /usr/local/cuda/bin/ptxas ] && [ ! -x /usr/local/cuda/bin/nvdisasm ]; then
  if [ -n "$(find "$nvdisasm_dir" -name nvdisasm -type f 2>/dev/null | head -n 1)" ]; then
    echo "setup: nvdisasm found under $nvdisasm_dir"
  else
    echo "setup: installing nvidia-cuda-nvdisasm (pip) into $nvdisasm_dir"
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    if ! $sudo python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
        --target "$nvdisasm_dir" 'nvidia-cuda-nvdisasm>=13,<14'; then
      echo "setup: could not install nvidia-cuda-nvdisasm; the SASS tests will be skipped"
    fi
  fi
fi
