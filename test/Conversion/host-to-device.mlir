// moe-host-to-device: host spans that read or write buffers become
// one-thread kernels; launches, allocations, calls and host loops that
// launch kernels stay on the host.
// RUN: moe-opt %s --moe-host-to-device=remarks=1 --verify-diagnostics | FileCheck %s

// CHECK-LABEL: func.func @spans(
// CHECK: %[[BUF:.*]] = memref.alloc() : memref<8xf32>
// The store and the loop after it: one launch of one thread.
// CHECK: gpu.launch blocks({{.*}}) in ({{.*}} = %[[ONE:.*]], {{.*}} = %[[ONE]], {{.*}} = %[[ONE]]) threads({{.*}}) in ({{.*}} = %[[ONE]], {{.*}} = %[[ONE]], {{.*}} = %[[ONE]])
// CHECK-NEXT: memref.store
// CHECK-NEXT: scf.for
// CHECK: gpu.terminator
// The existing kernel stays as it is.
// CHECK: gpu.launch
// CHECK: memref.load
// CHECK: gpu.terminator
// The final store into the result: a launch of its own.
// CHECK: gpu.launch
// CHECK-NEXT: memref.store %{{.*}}, %{{.*}}[] : memref<f32>
// CHECK: gpu.terminator
// CHECK: memref.dealloc %[[BUF]]
// CHECK-NEXT: return
func.func @spans(%out: memref<f32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c8 = arith.constant 8 : index
  %zero = arith.constant 0.0 : f32
  %buf = memref.alloc() : memref<8xf32>
  memref.store %zero, %buf[%c0] : memref<8xf32>
  scf.for %i = %c1 to %c8 step %c1 {
    memref.store %zero, %buf[%i] : memref<8xf32>
  }
  gpu.launch blocks(%bx, %by, %bz) in (%gx = %c1, %gy = %c1, %gz = %c1)
             threads(%tx, %ty, %tz) in (%sx = %c8, %sy = %c1, %sz = %c1) {
    %v = memref.load %buf[%tx] : memref<8xf32>
    gpu.terminator
  }
  memref.store %zero, %out[] : memref<f32>
  memref.dealloc %buf : memref<8xf32>
  return
}

// A host loop that launches a kernel per iteration stays on the host; a
// span whose value is used after it stays too.
// CHECK-LABEL: func.func @stays(
// CHECK-NEXT: arith.constant
// CHECK: scf.for
// CHECK: gpu.launch
// CHECK: memref.load
// CHECK-NOT: gpu.launch
// CHECK: return
func.func @stays(%buf: memref<8xf32>) -> f32 {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c8 = arith.constant 8 : index
  scf.for %i = %c0 to %c8 step %c1 {
    gpu.launch blocks(%bx, %by, %bz) in (%gx = %c1, %gy = %c1, %gz = %c1)
               threads(%tx, %ty, %tz) in (%sx = %c1, %sy = %c1, %sz = %c1) {
      gpu.terminator
    }
  }
  // expected-remark @below {{moe-host-to-device: left on the host: a value of this span is used after it}}
  %v = memref.load %buf[%c0] : memref<8xf32>
  %dummy = memref.alloc() : memref<1xf32>
  memref.dealloc %dummy : memref<1xf32>
  return %v : f32
}
