// moe-reduction-loops: a reduction on buffers becomes a parallel loop nest whose
// body accumulates in a register and stores each output once, with contractible
// multiply-adds; all-parallel ops, tensors and full reductions are left alone.
// RUN: moe-opt %s -split-input-file --linalg-generalize-named-ops --moe-reduction-loops | FileCheck %s

// CHECK-LABEL: func @matmul
// CHECK-SAME: (%[[A:.*]]: memref<5x7xf32>, %[[B:.*]]: memref<7x3xf32>, %[[C:.*]]: memref<5x3xf32>)
// CHECK-NOT: linalg.generic
// CHECK: scf.parallel (%[[I:.*]], %[[J:.*]]) =
// CHECK: %[[START:.*]] = memref.load %[[C]][%[[I]], %[[J]]]
// CHECK: %[[SUM:.*]] = scf.for %[[K:.*]] = {{.*}} iter_args(%[[ACC:.*]] = %[[START]]) -> (f32)
// CHECK-DAG: %[[X:.*]] = memref.load %[[A]][%[[I]], %[[K]]]
// CHECK-DAG: %[[Y:.*]] = memref.load %[[B]][%[[K]], %[[J]]]
// CHECK: %[[P:.*]] = arith.mulf %[[X]], %[[Y]] fastmath<contract> : f32
// CHECK: %[[Q:.*]] = arith.addf %[[ACC]], %[[P]] fastmath<contract> : f32
// CHECK: scf.yield %[[Q]]
// CHECK: memref.store %[[SUM]], %[[C]][%[[I]], %[[J]]]
// CHECK-NOT: memref.store
func.func @matmul(%a: memref<5x7xf32>, %b: memref<7x3xf32>, %c: memref<5x3xf32>) {
  linalg.matmul ins(%a, %b : memref<5x7xf32>, memref<7x3xf32>) outs(%c : memref<5x3xf32>)
  return
}

// -----

// Two reduction dimensions nest; linalg.index becomes the loop variable.
// CHECK-LABEL: func @two_reductions
// CHECK: scf.parallel (%[[I:.*]]) =
// CHECK: scf.for %[[R:.*]] = {{.*}} iter_args(%[[A0:.*]] = {{.*}}) -> (f32)
// CHECK: scf.for %[[S:.*]] = {{.*}} iter_args(%[[A1:.*]] = %[[A0]]) -> (f32)
// CHECK: arith.index_cast %[[S]]
#in = affine_map<(i, r, s) -> (i, r, s)>
#out = affine_map<(i, r, s) -> (i)>
func.func @two_reductions(%x: memref<4x3x2xf32>, %y: memref<4xf32>) {
  linalg.generic {indexing_maps = [#in, #out], iterator_types = ["parallel", "reduction", "reduction"]}
      ins(%x : memref<4x3x2xf32>) outs(%y : memref<4xf32>) {
  ^bb0(%v: f32, %acc: f32):
    %s = linalg.index 2 : index
    %si = arith.index_cast %s : index to i32
    %sf = arith.sitofp %si : i32 to f32
    %w = arith.mulf %v, %sf : f32
    %n = arith.addf %acc, %w : f32
    linalg.yield %n : f32
  }
  return
}

// -----

// Left alone: element-wise ops and full reductions.
// CHECK-LABEL: func @left_alone
// CHECK: linalg.generic {{.*}}iterator_types = ["parallel"]
// CHECK: linalg.generic {{.*}}iterator_types = ["reduction"]
#id = affine_map<(i) -> (i)>
#scalar = affine_map<(i) -> ()>
func.func @left_alone(%x: memref<4xf32>, %y: memref<4xf32>, %s: memref<f32>) {
  linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel"]}
      ins(%x : memref<4xf32>) outs(%y : memref<4xf32>) {
  ^bb0(%v: f32, %o: f32):
    linalg.yield %v : f32
  }
  linalg.generic {indexing_maps = [#id, #scalar], iterator_types = ["reduction"]}
      ins(%x : memref<4xf32>) outs(%s : memref<f32>) {
  ^bb0(%v: f32, %acc: f32):
    %n = arith.addf %acc, %v : f32
    linalg.yield %n : f32
  }
  return
}
