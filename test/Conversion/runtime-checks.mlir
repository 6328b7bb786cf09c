// Runtime checks: convert-moe-to-linalg{runtime-checks} asserts every expert id and row
// the routing ops compute or read, with messages naming the op and its location;
// moe-lower-runtime-checks turns host asserts into a branch to a call of the runtime's
// reporter (asserts in GPU kernels stay for the device's own lowering).
// RUN: moe-opt %s -split-input-file --convert-moe-to-linalg=runtime-checks=1 | FileCheck %s
// RUN: moe-opt %s -split-input-file --convert-moe-to-linalg | FileCheck %s --check-prefix=NONE
// RUN: moe-opt %s -split-input-file --moe-lower-runtime-checks | FileCheck %s --check-prefix=LOWER

// CHECK-LABEL: func @routing
// CHECK: cf.assert %{{.*}}, "moe.top_k at {{.*}}runtime-checks.mlir:[[@LINE+8]]:{{[0-9]+}}: chose an expert outside [0, 4)"
// CHECK: cf.assert %{{.*}}, "moe.assign_slots at {{.*}}runtime-checks.mlir:[[@LINE+8]]:{{[0-9]+}}: read an expert id outside [0, 4)"
// CHECK: cf.assert %{{.*}}, "moe.assign_slots at {{.*}}: gave an assignment a row outside [0, 4)"
// CHECK: cf.assert %{{.*}}, "moe.route_rows at {{.*}}: chose an expert outside [0, 4)"
// CHECK: cf.assert %{{.*}}, "moe.route_rows at {{.*}}: placed an assignment outside rows [0, 16)"
// NONE-LABEL: func @routing
// NONE-NOT: "moe.
func.func @routing(%p: tensor<8x4xf32>) -> (tensor<8x2xi32>, tensor<8x2xi32>, tensor<16xi32>) {
  %e, %g = moe.top_k %p k = 2 : tensor<8x4xf32>
  %s, %k, %c = moe.assign_slots %e num_experts = 4 group_size = 8 capacity = 4 priority = position : tensor<8x2xi32>
  %e2, %g2, %k2, %c2, %o2, %t2, %w2 = moe.route_rows %p k = 2 group_size = 8 priority = position : tensor<8x4xf32>
  return %e, %s, %t2 : tensor<8x2xi32>, tensor<8x2xi32>, tensor<16xi32>
}

// -----

// LOWER-DAG: llvm.mlir.global internal constant @moe_check_message_0("index out of range\00")
// LOWER-DAG: llvm.func @moe_rt_check_failed(!llvm.ptr)
// LOWER-LABEL: func @host
// LOWER: cf.cond_br %{{.*}}, ^[[OK:.*]], ^[[FAIL:.*]]
// LOWER: ^[[FAIL]]:
// LOWER: %[[P:.*]] = llvm.mlir.addressof @moe_check_message_0
// LOWER: llvm.call @moe_rt_check_failed(%{{.*}})
// LOWER: llvm.unreachable
// LOWER: ^[[OK]]:
// LOWER: return
// LOWER: gpu.module @kernels
// LOWER: cf.assert %{{.*}}, "in a kernel"
// LOWER-NOT: cf.assert
module attributes {gpu.container_module} {
  func.func @host(%i: index) {
    %c4 = arith.constant 4 : index
    %ok = arith.cmpi ult, %i, %c4 : index
    cf.assert %ok, "index out of range"
    return
  }
  gpu.module @kernels {
    gpu.func @k(%ok: i1) kernel {
      cf.assert %ok, "in a kernel"
      gpu.return
    }
  }
}
