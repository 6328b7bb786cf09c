// moe-gpu-pipeline: a layer becomes host LLVM-dialect code that launches
// kernels held in gpu.binary ops for the NVVM target (sm_90a by default,
// configurable), allocating through the generic allocation functions that
// the CUDA runtime backs with managed memory.
// RUN: moe-opt %s --moe-gpu-pipeline | FileCheck %s
// RUN: moe-opt %s '--moe-gpu-pipeline=chip=sm_80 features=+ptx75 format=isa' | FileCheck %s --check-prefixes=ISA,HOST
// With runtime checks: every check is in a kernel (the host holds no step
// of the layer) and reports through the device's assert (and the cubin
// still assembles: format bin).
// RUN: moe-opt %s '--moe-gpu-pipeline=runtime-checks=1 format=isa' | FileCheck %s --check-prefix=CHECKS
// RUN: moe-opt %s '--moe-gpu-pipeline=runtime-checks=1' | FileCheck %s --check-prefix=CHECKS-BIN

// CHECK-NOT: moe.
// The buffers are allocated first; then one stream carries every launch
// (asynchronous: gpu-async-region), waited for once; then the frees.
// CHECK-LABEL: llvm.func @moe_layer(
// CHECK: llvm.call @_mlir_memref_to_llvm_alloc
// CHECK-NOT: gpu.launch_func
// CHECK: %[[STREAM:.*]] = llvm.call @mgpuStreamCreate()
// CHECK-NOT: llvm.call @_mlir_memref_to_llvm
// CHECK: gpu.launch_func <%[[STREAM]] : !llvm.ptr> @moe_layer_kernel::@moe_layer_kernel blocks in ({{.*}}) threads in ({{.*}})
// CHECK-NOT: llvm.call @mgpuStreamSynchronize
// CHECK-NOT: llvm.call @_mlir_memref_to_llvm
// CHECK: gpu.launch_func <%[[STREAM]] : !llvm.ptr> @moe_layer_kernel_{{[0-9]+}}::@moe_layer_kernel
// CHECK-NOT: llvm.call @mgpuStreamSynchronize
// CHECK-NOT: llvm.call @_mlir_memref_to_llvm
// CHECK: llvm.call @mgpuStreamSynchronize(%[[STREAM]])
// CHECK-NEXT: llvm.call @mgpuStreamDestroy(%[[STREAM]])
// CHECK-NOT: gpu.launch_func
// CHECK-NOT: llvm.call @mgpuStreamSynchronize
// CHECK: llvm.call @_mlir_memref_to_llvm_free
// CHECK-LABEL: llvm.func @_mlir_ciface_moe_layer(
// CHECK: gpu.binary @moe_layer_kernel  [#gpu.object<#nvvm.target<O = 3, chip = "sm_90a", features = "+ptx80">, {{.*}}bin = "

// The whole layer on the device: the host function allocates, launches
// and frees, and touches no element of any buffer (no load, no store, no
// branch on data): routing, statistics and the expert matmuls are kernels.
// HOST-LABEL: llvm.func @moe_layer(
// HOST-NOT: llvm.load
// HOST-NOT: llvm.store
// HOST-NOT: llvm.cond_br
// HOST: gpu.launch_func
// HOST-NOT: llvm.load
// HOST-NOT: llvm.store
// HOST-NOT: llvm.cond_br
// HOST: llvm.return

// PTX text for another chip when asked.
// ISA: gpu.binary @moe_layer_kernel  [#gpu.object<#nvvm.target<O = 3, chip = "sm_80", features = "+ptx75">, {{.*}}assembly = "
// ISA-SAME: .target sm_80
// CHECKS-NOT: llvm.call @moe_rt_check_failed
// CHECKS: gpu.binary {{.*}}__assertfail
// CHECKS-BIN: gpu.binary @moe_layer_kernel {{.*}}bin = "
func.func @moe_layer(%x: tensor<16x32xbf16>, %r: tensor<4x32xf32>, %wi: tensor<4x32x64xbf16>, %wg: tensor<4x32x64xbf16>, %wo: tensor<4x64x32xbf16>)
    -> (tensor<16x32xbf16>, tensor<4xi64>, tensor<i64>, tensor<f32>, tensor<f32>) {
  %y, %t, %d, %lb, %z = moe.layer %x router(%r) w_in(%wi) w_gate(%wg) w_out(%wo) top_k 2 activation swiglu normalize_gates capacity_factor 1.25 priority position
      : tensor<16x32xbf16>, tensor<4x32xf32>, tensor<4x32x64xbf16>, tensor<4x32x64xbf16>, tensor<4x64x32xbf16>
  return %y, %t, %d, %lb, %z : tensor<16x32xbf16>, tensor<4xi64>, tensor<i64>, tensor<f32>, tensor<f32>
}
