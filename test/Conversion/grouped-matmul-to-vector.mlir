// moe-grouped-matmul-to-vector: the register-tiled CPU kernel of
// moe.grouped_matmul. With 512-bit vectors and 32 registers a gated up
// projection keeps 6 rows x (2 + 2) vectors of 16 lanes in registers; with
// 256-bit vectors and 16 registers, 6 x (1 + 1) of 8 lanes. The operand row
// is read through the gather index inside the reduction loop (no dispatch
// copy); the scatter epilogue adds the gate-scaled row into the token's row.
// These kernels pack each weight panel per call (pack-weights=0); PACKED
// checks the bind-time layout.
// RUN: moe-opt %s -split-input-file --moe-grouped-matmul-to-vector="vector-bits=512 registers=32 pack-weights=0 threads=2" | FileCheck %s --enable-var-scope --check-prefixes=CHECK,AVX512
// RUN: moe-opt %s -split-input-file --moe-grouped-matmul-to-vector="vector-bits=256 registers=16 threads=1 pack-weights=0" | FileCheck %s --enable-var-scope --check-prefixes=CHECK,AVX2
// RUN: moe-opt %s -split-input-file --moe-grouped-matmul-to-vector="vector-bits=256 registers=16" | FileCheck %s --enable-var-scope --check-prefix=PACKED
// RUN: not moe-opt %s -split-input-file --moe-grouped-matmul-to-vector="vector-bits=100" 2>&1 | FileCheck %s --check-prefix=BAD

// BAD: moe-grouped-matmul-to-vector: needs 'vector-bits' a multiple of 32 and at least 4 'registers', got 100 and

// CHECK-LABEL: func @up
// CHECK-SAME: (%[[X:.*]]: tensor<16x32xbf16>, %[[T:.*]]: tensor<32xi32>, %[[W:.*]]: tensor<4x32x64xbf16>, %[[WG:.*]]: tensor<4x32x64xbf16>
// CHECK: %[[XB:.*]] = bufferization.to_buffer %[[X]] read_only
// CHECK: %[[TB:.*]] = bufferization.to_buffer %[[T]] read_only
// CHECK: %[[WB:.*]] = bufferization.to_buffer %[[W]] read_only
// CHECK: %[[WGB:.*]] = bufferization.to_buffer %[[WG]] read_only
// CHECK: %[[OUT:.*]] = memref.alloc() : memref<32x64xf32>
// Rows no expert owns are zeroed.
// CHECK: linalg.fill
// Units: (column panel, expert); 64 columns in panels of 32 (AVX-512) or 8
// (AVX2) over 4 experts.
// AVX512: scf.parallel (%[[U:.*]]) = (%{{.*}}) to (%c8)
// AVX2: scf.for %[[U:.*]] = %{{.*}} to %c32
// Each unit packs its weight panel (both weights, as f32) once; every row
// tile then streams it.
// CHECK: %[[PANEL:.*]] = memref.alloc() : memref<32x{{64|16}}xf32>
// CHECK: scf.for %[[PK:.*]] = %{{.*}} to %c32
// AVX512: vector.load %[[WB]][%{{.*}}, %[[PK]], %{{.*}}] : {{.*}}, vector<16xbf16>
// AVX2: vector.load %[[WB]][%{{.*}}, %[[PK]], %{{.*}}] : {{.*}}, vector<8xbf16>
// CHECK: arith.extf
// CHECK: vector.store %{{.*}}, %[[PANEL]][%[[PK]],
// CHECK: vector.load %[[WGB]][%{{.*}}, %[[PK]], %{{.*}}]
// The row tile's operand rows come from the gather index.
// CHECK: %[[ROW0:.*]] = memref.load %[[TB]][%{{.*}}] : memref<32xi32
// CHECK: %[[SRC0:.*]] = arith.index_cast %[[ROW0]] : i32 to index
// AVX512: scf.for %[[K:.*]] = %{{.*}} to %c32{{.*}} iter_args({{.*}}) -> (vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>) {
// AVX2: scf.for %[[K:.*]] = %{{.*}} to %c32{{.*}} iter_args({{.*}}) -> (vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>) {
// CHECK: vector.load %[[PANEL]][%[[K]], %c0{{.*}}]
// The gather is the operand load: row SRC0 of the tokens, element K.
// CHECK: %[[A:.*]] = memref.load %[[XB]][%[[SRC0]], %[[K]]]
// CHECK: %[[AF:.*]] = arith.extf %[[A]] : bf16 to f32
// CHECK: %[[SPLAT:.*]] = vector.broadcast %[[AF]]
// CHECK: vector.fma %[[SPLAT]]
// Epilogue: silu(gate) * in (exp as a polynomial), stored to the row.
// CHECK: scf.if
// CHECK-NOT: math.exp
// CHECK: math.fma
// CHECK: vector.store %{{.*}}, %[[OUT]]
// CHECK: bufferization.to_tensor %[[OUT]] restrict writable
// Packed at bind time: the weights are [E, N / 8, K, 8] arguments, the
// function says which, and the kernel reads panel p of expert e directly.
// PACKED-LABEL: func @up
// PACKED-SAME: %{{.*}}: tensor<4x8x32x8xbf16>, %{{.*}}: tensor<4x8x32x8xbf16>, %{{.*}}: tensor<5xi64>, %{{.*}}: tensor<4xi64>) -> tensor<32x64xf32> attributes {moe.packed_weights = array<i64: 2, 8, 3, 8>}
// PACKED: %[[WB:.*]] = bufferization.to_buffer %arg2 read_only : tensor<4x8x32x8xbf16>
// PACKED-NOT: memref.alloc() : memref<32x16xf32>
// PACKED: scf.for %[[K:.*]] = {{.*}} iter_args
// PACKED: vector.load %[[WB]][%{{.*}}, %{{.*}}, %[[K]], %c0{{.*}}] : {{.*}}, vector<8xbf16>
// PACKED-LABEL: func @down
// PACKED-SAME: tensor<4x2x64x16xf32>
// PACKED-SAME: attributes {moe.packed_weights = array<i64: 1, 16>}
// PACKED-LABEL: func @narrow
// PACKED-SAME: tensor<2x3x16x8xf32>
// PACKED-LABEL: @private_weight(
// PACKED-SAME: tensor<2x16x24xf32>
// PACKED-NOT: moe.packed_weights
// PACKED: memref.alloc() : memref<16x8xf32>
func.func @up(%x: tensor<16x32xbf16>, %t: tensor<32xi32>, %w: tensor<4x32x64xbf16>,
              %wg: tensor<4x32x64xbf16>, %o: tensor<5xi64>, %c: tensor<4xi64>) -> tensor<32x64xf32> {
  %h = moe.grouped_matmul %x gather(%t) weight(%w) gate_weight(%wg) offsets(%o)
      counts(%c) activation swiglu
      : tensor<16x32xbf16>, tensor<32xi32>, tensor<4x32x64xbf16>, tensor<4x32x64xbf16>,
        tensor<5xi64>, tensor<4xi64> -> tensor<32x64xf32>
  return %h : tensor<32x64xf32>
}

// -----

// The down projection with the combine fused: units are groups of whole
// column panels (one per thread; here one group) over every expert, so no
// two threads add into the same elements; each valid row is scaled by its
// gate and added into its token's row.
// CHECK-LABEL: func @down
// CHECK-SAME: (%[[H:.*]]: tensor<32x64xf32>, %[[W:.*]]: tensor<4x64x32xf32>, %{{.*}}: tensor<4xi64>, %[[T:.*]]: tensor<32xi32>, %[[S:.*]]: tensor<32xf32>)
// CHECK-DAG: %[[TB:.*]] = bufferization.to_buffer %[[T]]
// CHECK-DAG: %[[SB:.*]] = bufferization.to_buffer %[[S]]
// CHECK: %[[OUT:.*]] = memref.alloc() : memref<16x32xf32>
// Without offsets, each expert starts after the rows of the ones before.
// CHECK: memref.alloca() : memref<5xi64>
// AVX512: scf.parallel (%{{.*}}) = (%{{.*}}) to (%c1{{.*}})
// AVX2: scf.for %{{.*}} = %{{.*}} to %c1{{.*}} {
// CHECK: scf.for %[[E:.*]] = %{{.*}} to %c4
// CHECK: scf.for %[[P:.*]] = %{{.*}} to %{{.*}} step
// CHECK: scf.for %{{.*}} iter_args
// CHECK: scf.if
// CHECK: %[[TOK:.*]] = memref.load %[[TB]]
// CHECK: %[[TOKI:.*]] = arith.index_cast %[[TOK]]
// CHECK: %[[G:.*]] = memref.load %[[SB]]
// CHECK: %[[GV:.*]] = vector.broadcast %[[G]]
// CHECK: %[[OLD:.*]] = vector.load %[[OUT]][%[[TOKI]], %{{.*}}]
// CHECK: %[[NEW:.*]] = vector.fma %[[GV]], %{{.*}}, %[[OLD]]
// CHECK: vector.store %[[NEW]], %[[OUT]][%[[TOKI]], %{{.*}}]
func.func @down(%h: tensor<32x64xf32>, %w: tensor<4x64x32xf32>, %c: tensor<4xi64>,
                %t: tensor<32xi32>, %s: tensor<32xf32>) -> tensor<16x32xf32> {
  %y = moe.grouped_matmul %h weight(%w) counts(%c) scatter(%t, %s)
      : tensor<32x64xf32>, tensor<4x64x32xf32>, tensor<4xi64>, tensor<32xi32>, tensor<32xf32> -> tensor<16x32xf32>
  return %y : tensor<16x32xf32>
}

// -----

// Columns that no panel of whole vectors divides: narrower vectors (here 24
// columns: 8 lanes with AVX-512, one vector per panel).
// CHECK-LABEL: func @narrow
// AVX512: vector.load {{.*}} vector<8xf32>
// AVX2: vector.load {{.*}} vector<8xf32>
func.func @narrow(%x: tensor<8x16xf32>, %w: tensor<2x16x24xf32>, %c: tensor<2xi64>) -> tensor<8x24xf32> {
  %h = moe.grouped_matmul %x weight(%w) counts(%c) activation relu
      : tensor<8x16xf32>, tensor<2x16x24xf32>, tensor<2xi64> -> tensor<8x24xf32>
  return %h : tensor<8x24xf32>
}

// -----

// A weight of a private function (the caller passes [E, K, N]) is packed per
// call instead.
// CHECK-LABEL: @private_weight(
func.func private @private_weight(%x: tensor<8x16xf32>, %w: tensor<2x16x24xf32>, %c: tensor<2xi64>) -> tensor<8x24xf32> {
  %h = moe.grouped_matmul %x weight(%w) counts(%c) activation relu
      : tensor<8x16xf32>, tensor<2x16x24xf32>, tensor<2xi64> -> tensor<8x24xf32>
  return %h : tensor<8x24xf32>
}
