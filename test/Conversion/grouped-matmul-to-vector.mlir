// moe-grouped-matmul-to-vector: the register-tiled CPU kernel of
// moe.grouped_matmul. With 512-bit vectors and 32 registers a gated up
// projection keeps 6 rows x (2 + 2) vectors of 16 lanes in registers; with
// 256-bit vectors and 16 registers, 6 x (1 + 1) of 8 lanes. The operand row
// is read through the gather index inside the reduction loop (no dispatch
// copy); the scatter epilogue adds the gate-scaled row into the token's row.
// RUN: moe-opt %s -split-input-file --moe-grouped-matmul-to-vector="vector-bits=512 registers=32" | FileCheck %s --enable-var-scope --check-prefixes=CHECK,AVX512
// RUN: moe-opt %s -split-input-file --moe-grouped-matmul-to-vector="vector-bits=256 registers=16 threads=1" | FileCheck %s --enable-var-scope --check-prefixes=CHECK,AVX2
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
// The row tile's operand rows come from the gather index.
// CHECK: %[[ROW0:.*]] = memref.load %[[TB]][%{{.*}}] : memref<32xi32
// CHECK: %[[SRC0:.*]] = arith.index_cast %[[ROW0]] : i32 to index
// AVX512: scf.for %[[K:.*]] = %{{.*}} to %c32{{.*}} iter_args({{.*}}) -> (vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>) {
// AVX2: scf.for %[[K:.*]] = %{{.*}} to %c32{{.*}} iter_args({{.*}}) -> (vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>) {
// AVX512: vector.load %[[WB]][%{{.*}}, %[[K]], %{{.*}}] : {{.*}}, vector<16xbf16>
// AVX2: vector.load %[[WB]][%{{.*}}, %[[K]], %{{.*}}] : {{.*}}, vector<8xbf16>
// CHECK: vector.load %[[WGB]][%{{.*}}, %[[K]], %{{.*}}]
// The gather is the operand load: row SRC0 of the tokens, element K.
// CHECK: %[[A:.*]] = memref.load %[[XB]][%[[SRC0]], %[[K]]]
// CHECK: %[[AF:.*]] = arith.extf %[[A]] : bf16 to f32
// CHECK: %[[SPLAT:.*]] = vector.broadcast %[[AF]]
// CHECK: vector.fma %[[SPLAT]]
// Epilogue: silu(gate) * in, stored to the row.
// CHECK: scf.if
// CHECK: math.exp
// CHECK: vector.store %{{.*}}, %[[OUT]]
// CHECK: bufferization.to_tensor %[[OUT]] restrict writable
func.func @up(%x: tensor<16x32xbf16>, %t: tensor<32xi32>, %w: tensor<4x32x64xbf16>,
              %wg: tensor<4x32x64xbf16>, %o: tensor<5xi64>, %c: tensor<4xi64>) -> tensor<32x64xf32> {
  %h = moe.grouped_matmul %x gather(%t) weight(%w) gate_weight(%wg) offsets(%o)
      counts(%c) activation swiglu
      : tensor<16x32xbf16>, tensor<32xi32>, tensor<4x32x64xbf16>, tensor<4x32x64xbf16>,
        tensor<5xi64>, tensor<4xi64> -> tensor<32x64xf32>
  return %h : tensor<32x64xf32>
}

// -----

// The down projection with the combine fused: units are whole column panels
// over every expert (no two threads add into the same elements); each valid
// row is scaled by its gate and added into its token's row.
// CHECK-LABEL: func @down
// CHECK-SAME: (%[[H:.*]]: tensor<32x64xf32>, %[[W:.*]]: tensor<4x64x32xf32>, %{{.*}}: tensor<4xi64>, %[[T:.*]]: tensor<32xi32>, %[[S:.*]]: tensor<32xf32>)
// CHECK-DAG: %[[TB:.*]] = bufferization.to_buffer %[[T]]
// CHECK-DAG: %[[SB:.*]] = bufferization.to_buffer %[[S]]
// CHECK: %[[OUT:.*]] = memref.alloc() : memref<16x32xf32>
// Without offsets, each expert starts after the rows of the ones before.
// CHECK: memref.alloca() : memref<5xi64>
// AVX512: scf.parallel (%{{.*}}) = (%{{.*}}) to (%c1{{.*}})
// AVX2: scf.for %{{.*}} = %{{.*}} to %c2{{.*}} {
// CHECK: scf.for %[[E:.*]] = %{{.*}} to %c4
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
