// moe-launch-bounds: the occupancy mark a kernel builder left in a launch
// body becomes nvvm.minctasm on the outlined kernel (PTX .minnctapersm, which
// ptxas budgets registers for), and the mark goes away; kernels without one
// get nothing.
// RUN: moe-opt %s --pass-pipeline="builtin.module(gpu.module(moe-launch-bounds))" | FileCheck %s

// CHECK-LABEL: gpu.func @marked
// CHECK-SAME: nvvm.minctasm = 4 : i32
// CHECK: gpu.dynamic_shared_memory :
// CHECK-NOT: moe.min_blocks_per_sm
// CHECK-LABEL: gpu.func @unmarked
// CHECK-NOT: nvvm.minctasm
// CHECK: gpu.return
gpu.module @kernels {
  gpu.func @marked() kernel {
    %0 = gpu.dynamic_shared_memory {moe.min_blocks_per_sm = 4 : i32} : memref<?xi8, #gpu.address_space<workgroup>>
    gpu.return
  }
  gpu.func @unmarked() kernel {
    gpu.return
  }
}
