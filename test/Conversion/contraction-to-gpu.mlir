// moe-contraction-to-gpu: a dense contraction C[m, n] += A[m, k] * B[n, k]
// with f32 accumulation (the router's logits) becomes one kernel of
// shared-memory tiles: per step of 32 k, the block's A and B rows go
// through registers into two double-buffered f32 tiles, transposed; each
// thread's micro-tile reads them as aligned vectors and accumulates with
// fma; one barrier per step. A zero fill of C right before it is removed.
// With host-loops the same structure runs as host loops. The numbers are
// checked against the float64 reference by the e2e suite (--backend
// gpu-loops: d_model 16 leaves half a step, 1, 4, 8, 32 and 256 experts,
// token counts that are no multiple of the tile).
// RUN: moe-opt %s -split-input-file --moe-contraction-to-gpu --canonicalize | FileCheck %s
// RUN: moe-opt %s -split-input-file --moe-contraction-to-gpu=host-loops=1 --canonicalize | FileCheck %s --check-prefix=HOST
// RUN: moe-opt %s -split-input-file --moe-contraction-to-gpu=remarks=1 -verify-diagnostics -o /dev/null

#a = affine_map<(m, n, k) -> (m, k)>
#b = affine_map<(m, n, k) -> (n, k)>
#c = affine_map<(m, n, k) -> (m, n)>

// The DeepSeek-V3 router at T 4096: 256 experts in tiles of 64 (4 blocks
// along x), 4096 tokens in tiles of 64 (64 blocks along y), 256 threads of
// 4 x 4 sums; tiles [2, 32, 64 + 4] f32 of A then of B: 34816 bytes.
// CHECK-LABEL: func.func @router_bf16(
// CHECK-SAME: %[[X:[^:]*]]: memref<4096x7168xbf16>, %[[W:[^:]*]]: memref<256x7168xbf16>, %[[C:[^:]*]]: memref<4096x256xf32>)
// CHECK-NOT: linalg.fill
// CHECK-NOT: linalg.generic
// CHECK: gpu.launch blocks({{.*}}) in ({{.*}} = %c4{{.*}}, {{.*}} = %c64{{.*}}, {{.*}} = %c1{{.*}}) threads({{.*}}) in ({{.*}} = %c256{{.*}}, {{.*}} = %c1{{.*}}, {{.*}} = %c1{{.*}}) dynamic_shared_memory_size %c34816_i32
// CHECK: gpu.dynamic_shared_memory {moe.min_blocks_per_sm = 4 : i32}
// CHECK: memref.view {{.*}}[%c0{{.*}}][] : {{.*}} to memref<2x32x68xf32, #gpu.address_space<workgroup>>
// CHECK: memref.view {{.*}}[%c17408{{.*}}][] : {{.*}} to memref<2x32x68xf32, #gpu.address_space<workgroup>>
// Step 0: 8 elements of A and 8 of B per thread, converted, stored, barrier.
// CHECK-COUNT-8: memref.load %[[X]]
// CHECK-COUNT-8: memref.load %[[W]]
// CHECK-COUNT-16: memref.store {{.*}} : memref<2x32x68xf32, #gpu.address_space<workgroup>>
// CHECK: gpu.barrier
// CHECK: scf.for {{.*}} = %c0 to %c7168 step %c32 iter_args({{.*}}) -> (f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32)
// The next step's loads first, then per k the vectors and 16 fma.
// CHECK-COUNT-8: memref.load %[[X]]
// CHECK-COUNT-8: memref.load %[[W]]
// CHECK: vector.load {{.*}} {alignment = 16 : i64} : memref<2x32x68xf32, #gpu.address_space<workgroup>>, vector<4xf32>
// CHECK: vector.load {{.*}} {alignment = 16 : i64} : memref<2x32x68xf32, #gpu.address_space<workgroup>>, vector<4xf32>
// CHECK-COUNT-16: math.fma
// CHECK: memref.store {{.*}} : memref<2x32x68xf32, #gpu.address_space<workgroup>>
// CHECK: gpu.barrier
// CHECK-NEXT: scf.yield
// The sums are stored (C was zero-filled; the tiles divide it: no guard).
// CHECK-NOT: memref.load %[[C]]
// CHECK-NOT: scf.if
// CHECK-COUNT-16: memref.store {{.*}}, %[[C]]
// CHECK: gpu.terminator
// HOST-LABEL: func.func @router_bf16(
// HOST-NOT: gpu.launch
// HOST-DAG: %[[TA:.*]] = memref.alloc() : memref<2x32x68xf32>
// HOST-DAG: %[[TB:.*]] = memref.alloc() : memref<2x32x68xf32>
// HOST-DAG: %[[ACC:.*]] = memref.alloc() : memref<256x16xf32>
// HOST-DAG: %[[LOADED:.*]] = memref.alloc() : memref<256x16xf32>
// HOST: scf.for %{{.*}} = %c0 to %c64 step %c1
// HOST: scf.for %{{.*}} = %c0 to %c4 step %c1
// HOST: linalg.fill ins(%{{.*}} : f32) outs(%[[ACC]] : memref<256x16xf32>)
// HOST: scf.for %{{.*}} = %c0 to %c7168 step %c32
// The three phases of a step, each a loop over the 256 threads.
// HOST: scf.for %{{.*}} = %c0 to %c256 step %c1
// HOST: memref.store {{.*}}, %[[LOADED]]
// HOST: scf.for %{{.*}} = %c0 to %c256 step %c1
// HOST-NOT: vector.load
// HOST: math.fma
// HOST: memref.store {{.*}}, %[[ACC]]
// HOST: scf.for %{{.*}} = %c0 to %c256 step %c1
// HOST: memref.load %[[LOADED]]
// HOST: memref.store {{.*}}, %[[TB]]
// HOST: memref.dealloc %[[TA]]
func.func @router_bf16(%x: memref<4096x7168xbf16>, %w: memref<256x7168xbf16>, %c: memref<4096x256xf32>) {
  %zero = arith.constant 0.0 : f32
  linalg.fill ins(%zero : f32) outs(%c : memref<4096x256xf32>)
  linalg.generic {indexing_maps = [#a, #b, #c], iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%x, %w : memref<4096x7168xbf16>, memref<256x7168xbf16>) outs(%c : memref<4096x256xf32>) {
  ^bb0(%in: bf16, %in_0: bf16, %out: f32):
    %0 = arith.extf %in : bf16 to f32
    %1 = arith.extf %in_0 : bf16 to f32
    %2 = arith.mulf %0, %1 : f32
    %3 = arith.addf %out, %2 : f32
    linalg.yield %3 : f32
  }
  return
}

// -----

#a = affine_map<(m, n, k) -> (m, k)>
#b = affine_map<(m, n, k) -> (n, k)>
#c = affine_map<(m, n, k) -> (m, n)>

// Eight experts: tiles of 32 x 8 (64 threads, 1 x 4 sums each). 100 tokens
// and 40 k values are no multiple of the tile and the step: loads past
// them read clamped addresses and give 0 (selects), stores past the last
// token are guarded. No fill before: the sums are added to C.
// CHECK-LABEL: func.func @narrow_no_fill(
// CHECK-SAME: %[[X:[^:]*]]: memref<100x40xf32>, %[[W:[^:]*]]: memref<8x40xf32>, %[[C:[^:]*]]: memref<100x8xf32>)
// CHECK: gpu.launch blocks({{.*}}) in ({{.*}} = %c1{{.*}}, {{.*}} = %c4{{.*}}, {{.*}} = %c1{{.*}}) threads({{.*}}) in ({{.*}} = %c64{{.*}}, {{.*}} = %c1{{.*}}, {{.*}} = %c1{{.*}})
// CHECK: arith.minui {{.*}}, %c99
// CHECK: arith.minui {{.*}}, %c39
// CHECK: memref.load %[[X]]
// CHECK: arith.select
// One f32 of A per k (a scalar load), four of B (a vector).
// CHECK: scf.for
// CHECK: memref.load {{.*}} : memref<2x32x36xf32, #gpu.address_space<workgroup>>
// CHECK: vector.load {{.*}} {alignment = 16 : i64} : memref<2x32x12xf32, #gpu.address_space<workgroup>>, vector<4xf32>
// CHECK-COUNT-4: math.fma
// CHECK: scf.if
// CHECK: %[[OLD:.*]] = memref.load %[[C]]
// CHECK: %[[NEW:.*]] = arith.addf %[[OLD]],
// CHECK: memref.store %[[NEW]], %[[C]]
func.func @narrow_no_fill(%x: memref<100x40xf32>, %w: memref<8x40xf32>, %c: memref<100x8xf32>) {
  linalg.generic {indexing_maps = [#a, #b, #c], iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%x, %w : memref<100x40xf32>, memref<8x40xf32>) outs(%c : memref<100x8xf32>) {
  ^bb0(%in: f32, %in_0: f32, %out: f32):
    %0 = arith.mulf %in_0, %in : f32
    %1 = arith.addf %0, %out : f32
    linalg.yield %1 : f32
  }
  return
}

// -----

#a = affine_map<(m, n, k) -> (m, k)>
#b = affine_map<(m, n, k) -> (k, n)>
#c = affine_map<(m, n, k) -> (m, n)>

// B indexed (k, n): not this kernel's layout; left to the loop lowering.
// CHECK-LABEL: func.func @b_not_transposed(
// CHECK-NOT: gpu.launch
// CHECK: linalg.generic
func.func @b_not_transposed(%x: memref<16x32xf32>, %w: memref<32x8xf32>, %c: memref<16x8xf32>) {
  // expected-remark @+1 {{moe-contraction-to-gpu: left to the loop lowering: indexing maps are not (m, k), (n, k) -> (m, n)}}
  linalg.generic {indexing_maps = [#a, #b, #c], iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%x, %w : memref<16x32xf32>, memref<32x8xf32>) outs(%c : memref<16x8xf32>) {
  ^bb0(%in: f32, %in_0: f32, %out: f32):
    %0 = arith.mulf %in, %in_0 : f32
    %1 = arith.addf %out, %0 : f32
    linalg.yield %1 : f32
  }
  return
}

// -----

#a = affine_map<(m, n, k) -> (m, k)>
#b = affine_map<(m, n, k) -> (n, k)>
#c = affine_map<(m, n, k) -> (m, n)>

// A body that computes more than a multiply-add, and dynamic shapes: left.
// CHECK-LABEL: func.func @not_a_multiply_add(
// CHECK-NOT: gpu.launch
// CHECK: linalg.generic
// CHECK-LABEL: func.func @dynamic(
// CHECK-NOT: gpu.launch
// CHECK: linalg.generic
func.func @not_a_multiply_add(%x: memref<16x32xf32>, %w: memref<8x32xf32>, %c: memref<16x8xf32>) {
  // expected-remark @+1 {{moe-contraction-to-gpu: left to the loop lowering: the body computes more than a multiply-add}}
  linalg.generic {indexing_maps = [#a, #b, #c], iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%x, %w : memref<16x32xf32>, memref<8x32xf32>) outs(%c : memref<16x8xf32>) {
  ^bb0(%in: f32, %in_0: f32, %out: f32):
    %0 = arith.mulf %in, %in_0 : f32
    %1 = arith.addf %out, %0 : f32
    %e = math.exp %1 : f32
    linalg.yield %1 : f32
  }
  return
}

func.func @dynamic(%x: memref<?x32xf32>, %w: memref<8x32xf32>, %c: memref<?x8xf32>) {
  // expected-remark @+1 {{moe-contraction-to-gpu: left to the loop lowering: dynamic shapes}}
  linalg.generic {indexing_maps = [#a, #b, #c], iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%x, %w : memref<?x32xf32>, memref<8x32xf32>) outs(%c : memref<?x8xf32>) {
  ^bb0(%in: f32, %in_0: f32, %out: f32):
    %0 = arith.mulf %in, %in_0 : f32
    %1 = arith.addf %out, %0 : f32
    linalg.yield %1 : f32
  }
  return
}
