// moe-grouped-matmul-to-vector: the register-tiled CPU kernel of
// moe.grouped_matmul. With 512-bit vectors and 32 registers a gated up
// projection keeps 6 rows x (2 + 2) vectors of 16 lanes in registers; with
// 256-bit vectors and 16 registers, 6 x (1 + 1) of 8 lanes. The operand row
// is read through the gather index inside the reduction loop (no dispatch
// copy); the scatter epilogue adds the gate-scaled row into the token's row.
// These kernels pack each weight panel block per call (pack-weights=0);
// PACKED checks the bind-time layout; BLOCKED the cache blocking with a
// 1 KiB L1 (reduction blocks of 8 steps: 4 blocks of the 32).
// RUN: moe-opt %s -split-input-file --moe-grouped-matmul-to-vector="vector-bits=512 registers=32 pack-weights=0 threads=2 l1-cache-kib=32 l2-cache-kib=512" | FileCheck %s --enable-var-scope --check-prefixes=CHECK,AVX512
// RUN: moe-opt %s -split-input-file --moe-grouped-matmul-to-vector="vector-bits=256 registers=16 threads=1 pack-weights=0 l1-cache-kib=32 l2-cache-kib=512" | FileCheck %s --enable-var-scope --check-prefixes=CHECK,AVX2
// RUN: moe-opt %s -split-input-file --moe-grouped-matmul-to-vector="vector-bits=256 registers=16" | FileCheck %s --enable-var-scope --check-prefix=PACKED
// RUN: moe-opt %s -split-input-file --moe-grouped-matmul-to-vector="vector-bits=256 registers=16 threads=1 l1-cache-kib=1 l2-cache-kib=4" | FileCheck %s --enable-var-scope --check-prefix=BLOCKED
// RUN: not moe-opt %s -split-input-file --moe-grouped-matmul-to-vector="vector-bits=100" 2>&1 | FileCheck %s --check-prefix=BAD
// RUN: not moe-opt %s -split-input-file --moe-grouped-matmul-to-vector="l1-cache-kib=64 l2-cache-kib=32" 2>&1 | FileCheck %s --check-prefix=BAD-CACHE
// RUN: env MOE_CPU_CACHE=big not moe-opt %s -split-input-file --moe-grouped-matmul-to-vector 2>&1 | FileCheck %s --check-prefix=BAD-ENV

// BAD: moe-grouped-matmul-to-vector: needs 'vector-bits' a multiple of 32 and at least 4 'registers', got 100 and
// BAD-CACHE: moe-grouped-matmul-to-vector: needs an L1 cache of at least 1 KiB and an L2 cache no smaller, got 64 KiB and 32 KiB
// BAD-ENV: got 0 KiB and 0 KiB (from MOE_CPU_CACHE='big', expected <L1 KiB>x<L2 KiB> such as 32x512)

// CHECK-LABEL: func @up
// CHECK-SAME: (%[[X:.*]]: tensor<16x32xbf16>, %[[T:.*]]: tensor<32xi32>, %[[W:.*]]: tensor<4x32x64xbf16>, %[[WG:.*]]: tensor<4x32x64xbf16>
// CHECK: %[[XB:.*]] = bufferization.to_buffer %[[X]] read_only
// CHECK: %[[TB:.*]] = bufferization.to_buffer %[[T]] read_only
// CHECK: %[[WB:.*]] = bufferization.to_buffer %[[W]] read_only
// CHECK: %[[WGB:.*]] = bufferization.to_buffer %[[WG]] read_only
// CHECK: %[[OUT:.*]] = memref.alloc() : memref<32x64xf32>
// Rows no expert owns are zeroed.
// CHECK: linalg.fill
// Units: (expert, block of column panels); 64 columns in panels of 32
// (AVX-512) or 8 (AVX2), all of one expert in one block: 4 units.
// AVX512: scf.parallel (%[[U:.*]]) = (%{{.*}}) to (%c4{{.*}})
// AVX2: scf.for %[[U:.*]] = %{{.*}} to %c4{{.*}} step
// Each unit has its partial sums (6-row tiles x 32 per chunk x panels) and
// a buffer for the weight panel block it packs (both weights, as f32).
// AVX512: %[[PART:.*]] = memref.alloc() : memref<384x64xf32>
// AVX2: %[[PART:.*]] = memref.alloc() : memref<1536x16xf32>
// CHECK: %[[PANEL:.*]] = memref.alloc() : memref<32x{{64|16}}xf32>
// Row chunks, reduction blocks (one here), panels.
// CHECK: scf.for %[[CHUNK:.*]] = %c0{{.*}} to %{{.*}} step
// CHECK: scf.for %[[KB:.*]] = %c0{{.*}} to %c1{{.*}} step
// CHECK: scf.for %[[P:.*]] = %c0{{.*}} to %{{.*}} step
// CHECK: scf.for %[[PK:.*]] = %{{.*}} to %{{.*}} step
// AVX512: vector.load %[[WB]][%{{.*}}, %[[PK]], %{{.*}}] : {{.*}}, vector<16xbf16>
// AVX2: vector.load %[[WB]][%{{.*}}, %[[PK]], %{{.*}}] : {{.*}}, vector<8xbf16>
// CHECK: arith.extf
// CHECK: vector.store %{{.*}}, %[[PANEL]]
// CHECK: vector.load %[[WGB]][%{{.*}}, %[[PK]], %{{.*}}]
// The row tile's operand rows come from the gather index.
// CHECK: scf.for %[[TILE:.*]] = %c0{{.*}} to %{{.*}} step
// CHECK: %[[ROW0:.*]] = memref.load %[[TB]][%{{.*}}] : memref<32xi32
// CHECK: %[[SRC0:.*]] = arith.index_cast %[[ROW0]] : i32 to index
// The reduction, unrolled by 4, accumulates in registers.
// AVX512: %[[ACC:.*]]:24 = scf.for %[[K:.*]] = %{{.*}} to %{{.*}} step %c4{{.*}} iter_args({{.*}}) -> (vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>) {
// AVX2: %[[ACC:.*]]:12 = scf.for %[[K:.*]] = %{{.*}} to %{{.*}} step %c4{{.*}} iter_args({{.*}}) -> (vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>) {
// CHECK: vector.load %[[PANEL]][%{{.*}}, %c0{{.*}}]
// The gather is the operand load: row SRC0 of the tokens, element K.
// CHECK: %[[A:.*]] = memref.load %[[XB]][%[[SRC0]], %[[K]]]
// CHECK: %[[AF:.*]] = arith.extf %[[A]] : bf16 to f32
// CHECK: %[[SPLAT:.*]] = vector.broadcast %[[AF]]
// CHECK: vector.fma %[[SPLAT]]
// CHECK-COUNT-3: %[[K]], %c{{[123]}}
// CHECK: scf.yield
// The block's sums go to the partial buffer.
// CHECK: vector.store %[[ACC]]#0, %[[PART]]
// Epilogue: silu(gate) * in (exp as a polynomial) from the partial sums,
// stored to the row.
// CHECK: scf.if
// CHECK: vector.load %[[PART]]
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
// A 1 KiB L1 holds 8 reduction steps of a 16-float panel block: 4 blocks;
// each unit's block holds 1 panel (the partial sums of 5 tiles of 6 rows).
// The first block starts from zeros, the others from the partial sums.
// BLOCKED-LABEL: func @up
// BLOCKED: scf.for %{{.*}} = %c0{{.*}} to %c32{{.*}} step
// BLOCKED: %[[PART:.*]] = memref.alloc() : memref<30x16xf32>
// BLOCKED: scf.for %[[KB:.*]] = %c0{{.*}} to %c4{{.*}} step
// BLOCKED: %[[K0:.*]] = arith.muli %[[KB]], %c8
// BLOCKED: %[[FIRST:.*]] = arith.cmpi eq, %[[KB]], %c0
// BLOCKED: scf.if %[[FIRST]] -> (vector<8xf32>,
// BLOCKED: scf.yield %cst
// BLOCKED: } else {
// BLOCKED: vector.load %[[PART]]
// BLOCKED: scf.for %{{.*}} = %[[K0]] to %{{.*}} step %c4
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
