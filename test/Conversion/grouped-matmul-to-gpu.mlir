// moe-grouped-matmul-to-buffers + moe-grouped-matmul-to-gpu: bf16/f16 grouped
// matmuls moved onto buffers (moe.grouped_matmul_buffers, which the buffer
// passes accept), then lowered to tensor-core kernels.
// A block per (64-row tile of one expert, 64-column tile): the gathered operand
// rows and the weight tile are staged into dynamic shared memory as words of
// k-pairs, warps run m16n8k16 MMAs on them, and the epilogue stores the
// activated rows or adds the gate-scaled rows into the tokens' rows. HOST is
// the same kernel as host loops (the GPU program's emulation); REMARK names
// the grouped matmuls left to the loop lowering.
// RUN: moe-opt %s -split-input-file --moe-grouped-matmul-to-buffers | FileCheck %s --enable-var-scope --check-prefix=BUF
// Most checks are of reduction steps of 32 k (max-step-depth=32) and 64
// columns (max-tile-cols=64); STEP64 below checks the default depth, 64
// where K allows, and WIDE the default columns, 128 for one weight where N
// allows.
// RUN: moe-opt %s -split-input-file --moe-grouped-matmul-to-buffers --moe-grouped-matmul-to-gpu="max-step-depth=32 max-tile-cols=64" | FileCheck %s --enable-var-scope
// RUN: moe-opt %s -split-input-file --moe-grouped-matmul-to-buffers --moe-grouped-matmul-to-gpu="host-loops=1 max-step-depth=32 max-tile-cols=64" | FileCheck %s --enable-var-scope --check-prefix=HOST
// RUN: moe-opt %s -split-input-file --moe-grouped-matmul-to-buffers=remarks=1 2>&1 | FileCheck %s --check-prefix=REMARK
// With warpgroup=1 (sm_90a): wgmma from descriptor-addressed tiles (SM90); the
// host emulation reads each thread's fragment through the descriptors (SM90HOST).
// RUN: moe-opt %s -split-input-file --moe-grouped-matmul-to-buffers --moe-grouped-matmul-to-gpu="warpgroup=1 max-step-depth=32 max-tile-cols=64" | FileCheck %s --check-prefix=SM90
// RUN: moe-opt %s -split-input-file --moe-grouped-matmul-to-buffers --moe-grouped-matmul-to-gpu="warpgroup=1 host-loops=1 max-step-depth=32 max-tile-cols=64" | FileCheck %s --check-prefix=SM90HOST

// Steps of 64 k (the default; K = 64 here): with warpgroup MMAs, operand and
// weight tiles of 64 core matrices (64 x 64 bf16) per buffer: 3 x (8192 + 2
// x 8192) + 48 = 73776 bytes; the operand tile's rows 1024 bytes apart (SBO
// 1024, LBO 128: (64 << 32) | (8 << 16)), the weight tiles' k rows 1024 (LBO)
// and columns 128 (SBO) as before; 4 k16 steps x 2 weights of m64n64k16 per
// step, then the wait leaving that group running. With warp MMAs 64-row
// tiles of 36-word rows: 3 x (9216 + 2 x 9216) = 82944 bytes, 4 k16 steps x
// 2 weights x 8 column tiles of m16n8k16.
// RUN: moe-opt %s -split-input-file --moe-grouped-matmul-to-buffers --moe-grouped-matmul-to-gpu=warpgroup=1 | FileCheck %s --check-prefix=STEP64
// RUN: moe-opt %s -split-input-file --moe-grouped-matmul-to-buffers --moe-grouped-matmul-to-gpu | FileCheck %s --check-prefix=STEP64WARP
// STEP64-LABEL: func @up
// STEP64: dynamic_shared_memory_size %c73776_i32
// STEP64: memref.view {{.*}} to memref<3x64x32xi32, #gpu.address_space<workgroup>>
// STEP64: memref.view {{.*}} to memref<3x64x32xi32, #gpu.address_space<workgroup>>
// STEP64: memref.view {{.*}} to memref<3x64x32xi32, #gpu.address_space<workgroup>>
// STEP64: scf.for %{{.*}} = %c0{{.*}} to %c64{{.*}} step %c64
// STEP64: arith.constant 274878431232 : i64
// STEP64-COUNT-8: nvvm.wgmma.mma_async
// STEP64-NOT: nvvm.wgmma.mma_async
// STEP64: nvvm.wgmma.commit.group.sync.aligned
// STEP64-NEXT: nvvm.wgmma.wait.group.sync.aligned 1
// One weight, N = 128 (@up_bf16, K = 64): 128-column tiles by default: 1 x 8
// blocks; warpgroup MMAs m64n128k16 (4 per step of 64 k), the weight tile
// of 128 core matrices per buffer, its k rows 2048 bytes apart (LBO 2048,
// SBO 128: (8 << 32) | (128 << 16)): 3 x (8192 + 16384) + 48 = 73776 bytes;
// warp MMAs on 16 column tiles (4 x 16 per step), weight rows of 68 words.
// RUN: moe-opt %s -split-input-file --moe-grouped-matmul-to-buffers --moe-grouped-matmul-to-gpu=warpgroup=1 | FileCheck %s --check-prefix=WIDE
// RUN: moe-opt %s -split-input-file --moe-grouped-matmul-to-buffers --moe-grouped-matmul-to-gpu | FileCheck %s --check-prefix=WIDEWARP
// WIDE-LABEL: func @up_bf16
// WIDE: gpu.launch blocks({{.*}}) in ({{.*}} = %c1{{(_[0-9]+)?}}, {{.*}} = %c8{{(_[0-9]+)?}}, {{.*}}) threads({{.*}}) in ({{.*}} = %c128{{(_[0-9]+)?}}, {{.*}}) dynamic_shared_memory_size %c73776_i32
// WIDE: memref.view {{.*}} to memref<3x64x32xi32, #gpu.address_space<workgroup>>
// WIDE: memref.view {{.*}} to memref<3x128x32xi32, #gpu.address_space<workgroup>>
// WIDE: arith.constant 34368126976 : i64
// WIDE-COUNT-4: nvvm.wgmma.mma_async {{.*}} <m = 64, n = 128, k = 16>
// WIDE-NOT: nvvm.wgmma.mma_async
// WIDE: nvvm.wgmma.commit.group.sync.aligned
// WIDE-LABEL: func @down
// WIDEWARP-LABEL: func @up_bf16
// WIDEWARP: memref.view {{.*}} to memref<3x64x68xi32, #gpu.address_space<workgroup>>
// WIDEWARP-COUNT-64: nvvm.mma.sync
// WIDEWARP-NOT: nvvm.mma.sync
// WIDEWARP: gpu.terminator
// STEP64WARP-LABEL: func @up
// STEP64WARP: dynamic_shared_memory_size %c82944_i32
// STEP64WARP: memref.view {{.*}} to memref<3x64x36xi32, #gpu.address_space<workgroup>>
// STEP64WARP: memref.view {{.*}} to memref<3x64x36xi32, #gpu.address_space<workgroup>>
// STEP64WARP: memref.view {{.*}} to memref<3x64x36xi32, #gpu.address_space<workgroup>>
// STEP64WARP-COUNT-64: nvvm.mma.sync
// STEP64WARP-NOT: nvvm.mma.sync
// STEP64WARP: gpu.terminator

// With tile-rows=128 (the default where the experts average 256 rows or
// more): 256 threads, two warpgroups, each reading its 64 rows of the
// operand tile (64 x 32 core matrices per buffer) from core 32 v (4096
// bytes further per warpgroup v = tid / 128); 200 rows: ceil(200 / 128) + 4
// experts = 6 row tiles; 3 x (8192 + 2 x 4096) + 48 = 49200 bytes; the
// mbarriers count 256 threads (twice for `full`: copies and stores).
// RUN: moe-opt %s -split-input-file --moe-grouped-matmul-to-buffers --moe-grouped-matmul-to-gpu="warpgroup=1 tile-rows=128 max-step-depth=32" | FileCheck %s --check-prefix=LARGE
// LARGE-LABEL: func @up
// LARGE: gpu.launch blocks({{.*}}) in ({{.*}} = %c2, {{.*}} = %c6, {{.*}}) threads(%[[TID:[^,]*]], {{.*}}) in ({{.*}} = %c256, {{.*}}) dynamic_shared_memory_size %c49200_i32
// LARGE: gpu.dynamic_shared_memory {moe.min_blocks_per_sm = 1 : i32}
// LARGE: memref.view {{.*}} to memref<3x64x32xi32, #gpu.address_space<workgroup>>
// LARGE: %[[WG:.*]] = arith.divui %[[TID]], %c128
// LARGE: arith.muli %[[WG]], %c32
// LARGE: nvvm.mbarrier.init %{{.*}}, %c512_i32
// LARGE: nvvm.mbarrier.init %{{.*}}, %c256_i32
// LARGE: nvvm.wgmma.mma_async
// SM90-LABEL: func @up
// Tiles of 32 core matrices (8 rows x 16 bytes) per buffer, no padding: 3 x
// (4096 + 2 x 4096) bytes, then 2 x 3 mbarriers of 8 bytes.
// SM90: arith.constant 36912 : i32
// SM90: memref.view {{.*}} to memref<3x32x32xi32, #gpu.address_space<workgroup>>
// SM90: memref.view {{.*}} to memref<3x32x32xi32, #gpu.address_space<workgroup>>
// SM90: memref.view {{.*}} to memref<3x32x32xi32, #gpu.address_space<workgroup>>
// SM90: %[[BARS:.*]] = memref.view {{.*}} to memref<6xi64, #gpu.address_space<workgroup>>
// Thread 0 initialises each buffer's `full` mbarrier (2 arrivals per thread:
// copies and register stores) and `empty` one (1), then one block barrier.
// Base descriptors, once per block (buffer 0, the first k16 step): the start
// address (& 0x3FFFF) >> 4, then for the operand tile LBO 128 bytes (k) and
// SBO 512 (rows): (32 << 32) | (8 << 16); for a weight tile LBO 1024 (k
// rows) and SBO 128 (columns): (8 << 32) | (64 << 16).
// SM90: %[[ADDR:.*]] = arith.andi %{{.*}}, %c262143_i64
// SM90-NEXT: %[[START:.*]] = arith.shrui %[[ADDR]], %c4_i64
// SM90-NEXT: arith.constant 137439477760 : i64
// SM90-NEXT: %[[DA:.*]] = arith.ori %[[START]]
// SM90: arith.constant 34363932672 : i64
// SM90-NEXT: %[[DW:.*]] = arith.ori
// SM90: arith.constant 34363932672 : i64
// SM90-NEXT: %[[DG:.*]] = arith.ori
// SM90: %[[FIRST:.*]] = arith.cmpi eq, %{{.*}}, %c0
// SM90: memref.extract_aligned_pointer_as_index %[[BARS]]
// SM90: nvvm.mbarrier.init %{{.*}}, %c256_i32, predicate = %[[FIRST]]
// SM90: nvvm.mbarrier.init %{{.*}}, %c128_i32{{.*}}, predicate = %[[FIRST]]
// SM90: nvvm.fence.mbarrier.init
// SM90-NEXT: gpu.barrier
// The prologue's two steps: copies, their arrival (when they land), the
// stores' arrival.
// SM90: nvvm.cp.async.shared.global
// SM90: nvvm.cp.async.mbarrier.arrive %{{.*}} {noinc = true} : !llvm.ptr<3>
// SM90: nvvm.mbarrier.arrive %{{.*}} : !llvm.ptr<3>
// SM90: nvvm.cp.async.mbarrier.arrive %{{.*}} {noinc = true} : !llvm.ptr<3>
// SM90: nvvm.mbarrier.arrive %{{.*}} : !llvm.ptr<3>
// Each step: the wait for its buffer's `full` phase, the proxy fence (the
// tiles are generic-proxy writes, wgmma reads through the async proxy); the
// MMAs as one group, waiting for all but that group (the previous step's are
// then complete); from step 1 on the arrival on `empty` of the step before
// and the wait for every thread's (the copies refill its buffer); the copies
// and their arrival; the converted words' stores into the buffer two steps
// ahead and their arrival. No block barrier.
// SM90: scf.for
// SM90-NOT: gpu.barrier
// SM90: nvvm.mbarrier.try_wait.parity %{{.*}}, %{{.*}}, %c10000000_i32 : !llvm.ptr<3>, i32, i32
// SM90-NEXT: nvvm.fence.proxy {kind = #nvvm.proxy_kind<async.shared>, space = #nvvm.shared_space<cta>}
// SM90-NOT: nvvm.mbarrier
// SM90: nvvm.wgmma.fence.aligned
// Each k16 step's descriptors: the base ones plus (buffer x tile bytes + the
// step's offset) / 16: buffers of 4096 bytes (256), step 0 at 0, step 1 at
// 256 bytes (16) in the operand tile and 2048 (128) in the weight tiles. A
// K-major, B N-major (layout row: transposed), f32 accumulators.
// SM90: %[[S0:.*]] = arith.muli %[[STAGE:.*]], %c256
// SM90-NEXT: arith.addi %[[S0]], %c0
// SM90-NEXT: %[[OA:.*]] = arith.index_cast
// SM90-NEXT: %[[A0:.*]] = arith.addi %[[DA]], %[[OA]] : i64
// SM90: %[[W0:.*]] = arith.addi %[[DW]], %{{.*}} : i64
// SM90: %[[G0:.*]] = arith.addi %[[DG]], %{{.*}} : i64
// SM90-NEXT: nvvm.wgmma.mma_async %[[A0]], %[[W0]], %{{.*}}, <m = 64, n = 64, k = 16>, D[<f32>, <one>], A[<bf16>, <one>, <row>], B[<bf16>, <one>, <row>] : !llvm.struct<(f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32)>
// SM90-NEXT: nvvm.wgmma.mma_async %[[A0]], %[[G0]]
// SM90: %[[S1:.*]] = arith.muli %[[STAGE]], %c256
// SM90-NEXT: arith.addi %[[S1]], %c16
// SM90: arith.muli %[[STAGE]], %c256
// SM90-NEXT: arith.addi %{{.*}}, %c128
// SM90-COUNT-2: nvvm.wgmma.mma_async
// SM90-NEXT: nvvm.wgmma.commit.group.sync.aligned
// SM90-NEXT: nvvm.wgmma.wait.group.sync.aligned 1
// SM90: %[[LATER:.*]] = arith.cmpi ugt
// SM90-NEXT: scf.if %[[LATER]]
// SM90: nvvm.mbarrier.arrive %[[EMPTY:.*]] : !llvm.ptr<3>
// SM90-NOT: nvvm.mbarrier
// SM90: nvvm.mbarrier.try_wait.parity %[[EMPTY]],
// SM90: nvvm.cp.async.shared.global
// SM90: nvvm.cp.async.mbarrier.arrive %{{.*}} {noinc = true}
// SM90: memref.store
// SM90: nvvm.mbarrier.arrive
// SM90-NOT: gpu.barrier
// SM90: scf.yield
// After the loop: no copy and no MMA left running before the epilogue.
// SM90: nvvm.cp.async.commit.group
// SM90-NEXT: nvvm.wgmma.wait.group.sync.aligned 0
// SM90-NEXT: nvvm.cp.async.wait.group 0
// SM90-NOT: nvvm.ldmatrix
// SM90-NOT: nvvm.mma.sync
// SM90: gpu.terminator

// SM90HOST-LABEL: func @up
// SM90HOST-NOT: nvvm
// SM90HOST: memref.alloc() : memref<3x32x32xi32>
// SM90HOST: memref.alloc() : memref<3x32x32xi32>
// SM90HOST: memref.alloc() : memref<3x32x32xi32>
// SM90HOST: memref.alloc() : memref<128x64xf32>
// SM90HOST: memref.alloc() : memref<128x8xi32>
// No fragment registers or ldmatrix rows: each thread's accumulators come
// from the tiles, element addresses decoded from the descriptors' fields.
// SM90HOST-NOT: memref<128x72xi32>
// SM90HOST-NOT: index>
// SM90HOST: scf.for %{{.*}} = %{{.*}} to %c16
// SM90HOST: arith.shrui %{{.*}}, %c32_i64
// SM90HOST: math.fma
// SM90HOST-COUNT-5: memref.dealloc
// SM90HOST: bufferization.to_tensor

// BUF-LABEL: func @up
// BUF: %[[OUT:.*]] = memref.alloc() : memref<200x128xf32>
// BUF: linalg.fill {{.*}} outs(%[[OUT]]
// BUF: moe.grouped_matmul_buffers %{{.*}} gather(%{{.*}}) weight(%{{.*}}) gate_weight(%{{.*}}) offsets(%{{.*}}) counts(%{{.*}}) out(%[[OUT]]) activation swiglu : memref<100x64xf32, strided<[?, 1], offset: ?>>
// BUF: bufferization.to_tensor %[[OUT]] restrict writable
// BUF-LABEL: func @down
// BUF: moe.grouped_matmul_buffers {{.*}} scatter(
// BUF-LABEL: func @kept
// BUF-COUNT-3: moe.grouped_matmul %

// CHECK-LABEL: func @up
// CHECK-SAME: (%[[X:.*]]: tensor<100x64xf32>, %[[T:.*]]: tensor<200xi32>, %[[W:.*]]: tensor<4x64x128xbf16>, %[[WG:.*]]: tensor<4x64x128xbf16>, %[[O:.*]]: tensor<5xi64>, %[[C:.*]]: tensor<4xi64>
// CHECK-DAG: %[[XB:.*]] = bufferization.to_buffer %[[X]] read_only
// CHECK-DAG: %[[TB:.*]] = bufferization.to_buffer %[[T]] read_only
// CHECK-DAG: %[[WB:.*]] = bufferization.to_buffer %[[W]] read_only
// CHECK-DAG: %[[WGB:.*]] = bufferization.to_buffer %[[WG]] read_only
// CHECK-DAG: %[[OB:.*]] = bufferization.to_buffer %[[O]] read_only
// CHECK-DAG: %[[CB:.*]] = bufferization.to_buffer %[[C]] read_only
// CHECK: %[[OUT:.*]] = memref.alloc() : memref<200x128xf32>
// CHECK: linalg.fill {{.*}} outs(%[[OUT]]
// Grid: 128 / 64 column tiles x (ceil(200 / 64) + 4 experts) row tiles; 128
// threads; shared memory for three buffers of the operand tile (64 rows x 20
// words) and of the two weight tiles (32 k rows x 36 words): 43008 bytes.
// CHECK-DAG: %[[GX:.*]] = arith.constant 2 : index
// CHECK-DAG: %[[GY:.*]] = arith.constant 8 : index
// CHECK-DAG: %[[NT:.*]] = arith.constant 128 : index
// CHECK-DAG: %[[SMEM:.*]] = arith.constant 43008 : i32
// CHECK: gpu.launch blocks(%[[BX:.*]], %[[BY:.*]], %{{.*}}) in (%{{.*}} = %[[GX]], %{{.*}} = %[[GY]], %{{.*}} = %{{.*}}) threads(%[[TID:.*]], %{{.*}}, %{{.*}}) in (%{{.*}} = %[[NT]], %{{.*}}, %{{.*}}) dynamic_shared_memory_size %[[SMEM]]
// CHECK: %[[SH:.*]] = gpu.dynamic_shared_memory {moe.min_blocks_per_sm = 1 : i32} : memref<?xi8, #gpu.address_space<workgroup>>
// CHECK: %[[TA:.*]] = memref.view %[[SH]][%{{.*}}][] : memref<?xi8, #gpu.address_space<workgroup>> to memref<3x64x20xi32, #gpu.address_space<workgroup>>
// CHECK: %[[TW:.*]] = memref.view %[[SH]][%{{.*}}][] : memref<?xi8, #gpu.address_space<workgroup>> to memref<3x32x36xi32, #gpu.address_space<workgroup>>
// CHECK: %[[TG:.*]] = memref.view %[[SH]][%{{.*}}][] : memref<?xi8, #gpu.address_space<workgroup>> to memref<3x32x36xi32, #gpu.address_space<workgroup>>
// The block's tile: a scan of the experts' counts, starts from the offsets.
// CHECK: scf.for %[[E:.*]] = {{.*}} iter_args
// CHECK: memref.load %[[CB]][%[[E]]]
// CHECK: memref.load %[[OB]][%[[E]]]
// CHECK: scf.if
// The gather index of each operand row the thread stages, loaded once per
// block (the same rows every step).
// CHECK: %[[SRC:.*]] = memref.load %[[TB]][
// CHECK: %[[SRCI:.*]] = arith.index_cast %[[SRC]]
// Prologue: steps 0 and 1 into buffers 0 and 1, one cp.async group each. The
// weight rows are copied asynchronously, 16 bytes at a time through L2, from
// their global addresses (offset and strides of the buffer); the operand rows
// come through the gather index (no dispatch copy), rounded to bf16 and
// packed in pairs in registers, then stored. No barrier before the loop.
// CHECK: memref.extract_strided_metadata %[[WB]]
// CHECK: memref.extract_aligned_pointer_as_index %[[WB]]
// CHECK: llvm.inttoptr %{{.*}} : i64 to !llvm.ptr<1>
// CHECK: nvvm.cp.async.shared.global %{{.*}}, %{{.*}}, 16, cache = cg : !llvm.ptr<3>, !llvm.ptr<1>
// CHECK: memref.extract_strided_metadata %[[WGB]]
// CHECK: nvvm.cp.async.shared.global
// CHECK: %[[A0:.*]] = memref.load %[[XB]][%[[SRCI]], %{{.*}}]
// CHECK: arith.truncf %[[A0]] : f32 to bf16
// CHECK: memref.store %{{.*}}, %[[TA]][%c0{{(_[0-9]+)?}},
// CHECK: nvvm.cp.async.commit.group
// CHECK: nvvm.cp.async.shared.global
// CHECK: memref.store %{{.*}}, %[[TA]][%c1{{(_[0-9]+)?}},
// CHECK: nvvm.cp.async.commit.group
// CHECK-NOT: gpu.barrier
// Step i: wait until step i's group is complete (at most one newer one
// pending), one barrier; the operand words of step i + 2 loaded into
// registers; the weight copies of step i + 2 into buffer (i + 2) % 3; the
// MMAs on buffer i % 3 (A fragments by ldmatrix, B fragments by
// ldmatrix.trans from the k rows); the operand words stored into buffer
// (i + 2) % 3.
// CHECK: scf.for %[[K0:.*]] = %{{.*}} to %{{.*}} step %{{.*}} iter_args({{.*}}) -> (f32,
// CHECK: %[[I:.*]] = arith.divui %[[K0]]
// CHECK: %[[STAGE:.*]] = arith.remui %[[I]], %c3
// CHECK: %[[AHEAD:.*]] = arith.remui %{{.*}}, %c3
// CHECK: nvvm.cp.async.wait.group 1
// CHECK-NEXT: gpu.barrier
// CHECK-NOT: memref.load %[[TB]]
// CHECK: memref.load %[[XB]][%[[SRCI]],
// CHECK: arith.muli %[[AHEAD]], %c32
// CHECK: nvvm.cp.async.shared.global
// CHECK: nvvm.cp.async.commit.group
// CHECK: arith.muli %[[STAGE]], %c64
// CHECK: memref.extract_aligned_pointer_as_index %[[TA]]
// CHECK: nvvm.ldmatrix %{{.*}} {eltType = #nvvm.ld_st_matrix_elt_type<b16>, layout = #nvvm.mma_layout<row>, num = 4 : i32, shape = #nvvm.ld_st_matrix_shape<m = 8, n = 8>} : (!llvm.ptr<3>) -> !llvm.struct<(i32, i32, i32, i32)>
// CHECK: memref.extract_aligned_pointer_as_index %[[TW]]
// CHECK: nvvm.ldmatrix %{{.*}} {eltType = #nvvm.ld_st_matrix_elt_type<b16>, layout = #nvvm.mma_layout<col>, num = 4 : i32, shape = #nvvm.ld_st_matrix_shape<m = 8, n = 8>} : (!llvm.ptr<3>) -> !llvm.struct<(i32, i32, i32, i32)>
// CHECK: nvvm.mma.sync A[{{.*}}] B[{{.*}}] C[{{.*}}] {layoutA = #nvvm.mma_layout<row>, layoutB = #nvvm.mma_layout<col>, multiplicandAPtxType = #nvvm.mma_type<bf16>, multiplicandBPtxType = #nvvm.mma_type<bf16>, shape = #nvvm.shape<m = 16, n = 8, k = 16>} : (i32, i32, f32) -> !llvm.struct<(f32, f32, f32, f32)>
// CHECK-COUNT-31: nvvm.mma.sync
// CHECK-NOT: nvvm.mma.sync
// CHECK: memref.store %{{.*}}, %[[TA]][%[[AHEAD]],
// CHECK-NOT: gpu.barrier
// CHECK-NOT: memref.load %[[TB]]
// After the loop no copy is pending; the epilogue: the activation, stores.
// CHECK: nvvm.cp.async.wait.group 0
// CHECK: scf.if
// CHECK: math.exp
// CHECK: memref.store %{{.*}}, %[[OUT]][
// CHECK: gpu.terminator
// CHECK: bufferization.to_tensor %[[OUT]] restrict writable

// HOST-LABEL: func @up
// HOST-NOT: gpu.launch
// HOST-NOT: nvvm
// HOST: %[[OUT:.*]] = memref.alloc() : memref<200x128xf32>
// HOST: memref.alloc() : memref<3x64x20xi32>
// HOST: memref.alloc() : memref<3x32x36xi32>
// HOST: memref.alloc() : memref<3x32x36xi32>
// HOST: memref.alloc() : memref<128x64xf32>
// Every thread's MMA registers: 2 k16 steps x (4 A + 2 x 8 x 2 B) words.
// HOST: memref.alloc() : memref<128x72xi32>
// The rows each thread gives its warp's ldmatrix: 2 k16 steps x (1 + 2 x 4)
// loads x (row, word).
// HOST: memref.alloc() : memref<128x36xindex>
// Every thread's prefetch registers: 8 operand words.
// HOST: memref.alloc() : memref<128x8xi32>
// HOST: scf.for %{{.*}} = %{{.*}} to %c8
// HOST: scf.for %{{.*}} = %{{.*}} to %c2
// HOST: linalg.fill
// The prologue's two steps by all 128 threads (the weight copies stored at
// once, the operand words converted), then per step: the copies of step
// i + 2 and the operand words into the prefetch registers, the rows each
// thread gives its warp's ldmatrix, the words each takes of the rows its
// warp gave (transposing for B: halves of two rows' words), their MMAs
// from the registers of the warp's lanes (halves unpacked to f32), the
// prefetched words stored; then the epilogue of all threads.
// HOST: scf.for %{{.*}} = %{{.*}} to %c128
// HOST: memref.store {{.*}} : memref<3x32x36xi32>
// HOST: arith.truncf
// HOST: memref.store {{.*}} : memref<3x64x20xi32>
// HOST: scf.for %{{.*}} = %{{.*}} to %c128
// HOST: scf.for %{{.*}} = %{{.*}} to %c64{{.*}} step %c32
// HOST: memref.store {{.*}} : memref<3x32x36xi32>
// HOST: memref.store {{.*}} : memref<128x8xi32>
// HOST: memref.store {{.*}} : memref<128x36xindex>
// HOST: memref.load {{.*}} : memref<128x36xindex>
// HOST: arith.shrui
// HOST: memref.store {{.*}} : memref<128x72xi32>
// HOST: scf.for %{{.*}} = %{{.*}} to %c16
// HOST: memref.load {{.*}} : memref<128x72xi32>
// HOST: arith.shrui
// HOST: math.fma
// HOST: memref.load {{.*}} : memref<128x8xi32>
// HOST: memref.store {{.*}} : memref<3x64x20xi32>
// HOST: math.exp
// The kernel runs after the buffer passes: its own buffers are freed.
// HOST-COUNT-7: memref.dealloc
// HOST: bufferization.to_tensor %[[OUT]]
func.func @up(%x: tensor<100x64xf32>, %t: tensor<200xi32>, %w: tensor<4x64x128xbf16>,
              %wg: tensor<4x64x128xbf16>, %o: tensor<5xi64>, %c: tensor<4xi64>) -> tensor<200x128xf32> {
  %h = moe.grouped_matmul %x gather(%t) weight(%w) gate_weight(%wg) offsets(%o)
      counts(%c) activation swiglu
      : tensor<100x64xf32>, tensor<200xi32>, tensor<4x64x128xbf16>, tensor<4x64x128xbf16>,
        tensor<5xi64>, tensor<4xi64> -> tensor<200x128xf32>
  return %h : tensor<200x128xf32>
}

// -----

// Tokens already in the weights' type: the operand rows are copied
// asynchronously too, straight from the gathered token rows (no conversion,
// no registers), rows past the tile's filled with zeros (source size 0).
// CHECK-LABEL: func @up_bf16
// CHECK-SAME: (%[[X:.*]]: tensor<100x64xbf16>, %[[T:.*]]: tensor<200xi32>
// CHECK-DAG: %[[XB:.*]] = bufferization.to_buffer %[[X]] read_only
// CHECK-DAG: %[[TB:.*]] = bufferization.to_buffer %[[T]] read_only
// CHECK: gpu.launch
// CHECK: scf.if
// CHECK-NOT: arith.truncf
// CHECK: %[[VALID:[0-9a-z_]+]] = arith.cmpi ult
// CHECK: %[[SRC:.*]] = memref.load %[[TB]][
// CHECK: %[[SRCI:.*]] = arith.index_cast %[[SRC]]
// CHECK: %[[BYTES:.*]] = arith.select %[[VALID]], %c16_i32{{.*}}, %c0_i32
// CHECK: memref.extract_strided_metadata %[[XB]]
// CHECK: arith.muli %[[SRCI]]
// CHECK: nvvm.cp.async.shared.global %{{.*}}, %{{.*}}, 16, cache = cg, %[[BYTES]] : !llvm.ptr<3>, !llvm.ptr<1>, i32
// CHECK-NOT: arith.truncf
// CHECK: nvvm.cp.async.commit.group
// CHECK: scf.for
// CHECK-NOT: memref.load %[[XB]]
// CHECK-NOT: arith.truncf
// CHECK: nvvm.mma.sync
// CHECK-NOT: memref.store {{.*}} #gpu.address_space<workgroup>>
// CHECK: gpu.terminator
// HOST-LABEL: func @up_bf16
// HOST-NOT: memref<128x8xi32>
// HOST: memref.alloc() : memref<128x20xindex>
// HOST: arith.select
// HOST: memref.store {{.*}} : memref<3x64x20xi32>
// HOST-COUNT-5: memref.dealloc
// HOST: bufferization.to_tensor
// HOST-LABEL: func @down
func.func @up_bf16(%x: tensor<100x64xbf16>, %t: tensor<200xi32>, %w: tensor<4x64x128xbf16>,
                   %o: tensor<5xi64>, %c: tensor<4xi64>) -> tensor<200x128xf32> {
  %h = moe.grouped_matmul %x gather(%t) weight(%w) offsets(%o) counts(%c) activation relu
      : tensor<100x64xbf16>, tensor<200xi32>, tensor<4x64x128xbf16>, tensor<5xi64>,
        tensor<4xi64> -> tensor<200x128xf32>
  return %h : tensor<200x128xf32>
}

// -----

// The down projection with the combine fused, f16 weights (f16x2 operands):
// without offsets each expert starts after the rows of the ones before; the
// gate-scaled rows are added atomically into the tokens' rows.
// CHECK-LABEL: func @down
// CHECK-SAME: (%[[H:.*]]: tensor<200x128xf32>, %[[W:.*]]: tensor<4x128x64xf16>, %{{.*}}: tensor<4xi64>, %[[T:.*]]: tensor<200xi32>, %[[S:.*]]: tensor<200xf32>)
// CHECK-DAG: %[[TB:.*]] = bufferization.to_buffer %[[T]]
// CHECK-DAG: %[[SB:.*]] = bufferization.to_buffer %[[S]]
// CHECK: %[[OUT:.*]] = memref.alloc() : memref<100x64xf32>
// CHECK: linalg.fill {{.*}} outs(%[[OUT]]
// CHECK: gpu.launch
// CHECK: arith.truncf %{{.*}} : f32 to f16
// CHECK: llvm.bitcast %{{.*}} : i32 to vector<2xf16>
// CHECK: nvvm.mma.sync A[{{.*}}] B[{{.*}}] C[{{.*}}] {{.*}} : (vector<2xf16>, vector<2xf16>, f32) -> !llvm.struct<(f32, f32, f32, f32)>
// CHECK: %[[TOK:.*]] = memref.load %[[TB]]
// CHECK: %[[TOKI:.*]] = arith.index_cast %[[TOK]]
// CHECK: %[[G:.*]] = memref.load %[[SB]]
// CHECK: %[[V:.*]] = arith.mulf %[[G]], %{{.*}} : f32
// CHECK: memref.atomic_rmw addf %[[V]], %[[OUT]][%[[TOKI]], %{{.*}}]
func.func @down(%h: tensor<200x128xf32>, %w: tensor<4x128x64xf16>, %c: tensor<4xi64>,
                %t: tensor<200xi32>, %s: tensor<200xf32>) -> tensor<100x64xf32> {
  %y = moe.grouped_matmul %h weight(%w) counts(%c) scatter(%t, %s)
      : tensor<200x128xf32>, tensor<4x128x64xf16>, tensor<4xi64>, tensor<200xi32>, tensor<200xf32> -> tensor<100x64xf32>
  return %y : tensor<100x64xf32>
}

// -----

// What stays with the loop lowering: f32 weights, and shapes the tiles do
// not divide.
// CHECK-LABEL: func @kept
// CHECK-NOT: gpu.launch
// CHECK-COUNT-3: moe.grouped_matmul
// REMARK: remark: moe-grouped-matmul-to-buffers: kept for the loop lowering: f32 weights (the tensor-core kernel takes bf16 or f16)
// REMARK: remark: moe-grouped-matmul-to-buffers: kept for the loop lowering: K = 48 is not a multiple of 32
// REMARK: remark: moe-grouped-matmul-to-buffers: kept for the loop lowering: N = 96 is not a multiple of 64
func.func @kept(%x: tensor<8x64xf32>, %w: tensor<2x64x64xf32>, %x48: tensor<8x48xf32>,
                %w48: tensor<2x48x64xbf16>, %w96: tensor<2x64x96xbf16>, %c: tensor<2xi64>)
    -> (tensor<8x64xf32>, tensor<8x64xf32>, tensor<8x96xf32>) {
  %a = moe.grouped_matmul %x weight(%w) counts(%c) activation relu
      : tensor<8x64xf32>, tensor<2x64x64xf32>, tensor<2xi64> -> tensor<8x64xf32>
  %b = moe.grouped_matmul %x48 weight(%w48) counts(%c) activation relu
      : tensor<8x48xf32>, tensor<2x48x64xbf16>, tensor<2xi64> -> tensor<8x64xf32>
  %d = moe.grouped_matmul %x weight(%w96) counts(%c)
      : tensor<8x64xf32>, tensor<2x64x96xbf16>, tensor<2xi64> -> tensor<8x96xf32>
  return %a, %b, %d : tensor<8x64xf32>, tensor<8x64xf32>, tensor<8x96xf32>
}

// -----

// The hidden rows between an up and a down projection that are both
// tensor-core kernels with bf16 weights are stored in bf16 (the down
// projection rounds its operand rows so anyway): the up projection's
// epilogue rounds them, the down projection copies them asynchronously. They
// are not zero-filled first: the down projection, over the same offsets and
// counts, reads only the rows its tiles own. A result with another user
// stays f32 and zero-filled.
// BUF-LABEL: func @chain
// BUF: %[[H:.*]] = memref.alloc() : memref<200x128xbf16>
// BUF-NOT: linalg.fill
// BUF: moe.grouped_matmul_buffers {{.*}} out(%[[H]]) activation relu
// BUF: %[[HT:.*]] = bufferization.to_tensor %[[H]] restrict writable : memref<200x128xbf16> to tensor<200x128xbf16>
// BUF: moe.grouped_matmul_buffers {{.*}} scatter(
// BUF-SAME: memref<200x128xbf16
// BUF-SAME: memref<100x64xf32>
// BUF-LABEL: func @shared_hidden
// BUF: %[[HF:.*]] = memref.alloc() : memref<200x128xf32>
// BUF: linalg.fill ins(%{{.*}} : f32) outs(%[[HF]]
// CHECK-LABEL: func @chain
// CHECK: gpu.launch
// CHECK: arith.maximumf
// CHECK: %[[R:.*]] = arith.truncf %{{.*}} : f32 to bf16
// CHECK: memref.store %[[R]], %{{.*}} : memref<200x128xbf16>
// CHECK: gpu.terminator
// CHECK: gpu.launch
// CHECK-NOT: arith.truncf
// CHECK: %[[BYTES:.*]] = arith.select %{{.*}}, %c16_i32{{.*}}, %c0_i32
// CHECK: nvvm.cp.async.shared.global %{{.*}}, %{{.*}}, 16, cache = cg, %[[BYTES]]
// CHECK: memref.atomic_rmw addf
func.func @chain(%x: tensor<100x64xbf16>, %t: tensor<200xi32>, %w: tensor<4x64x128xbf16>,
                 %w2: tensor<4x128x64xbf16>, %o: tensor<5xi64>, %c: tensor<4xi64>,
                 %s: tensor<200xf32>) -> tensor<100x64xf32> {
  %h = moe.grouped_matmul %x gather(%t) weight(%w) offsets(%o) counts(%c) activation relu
      : tensor<100x64xbf16>, tensor<200xi32>, tensor<4x64x128xbf16>, tensor<5xi64>,
        tensor<4xi64> -> tensor<200x128xf32>
  %y = moe.grouped_matmul %h weight(%w2) offsets(%o) counts(%c) scatter(%t, %s)
      : tensor<200x128xf32>, tensor<4x128x64xbf16>, tensor<5xi64>, tensor<4xi64>,
        tensor<200xi32>, tensor<200xf32> -> tensor<100x64xf32>
  return %y : tensor<100x64xf32>
}

func.func @shared_hidden(%x: tensor<100x64xbf16>, %t: tensor<200xi32>, %w: tensor<4x64x128xbf16>,
                         %w2: tensor<4x128x64xbf16>, %o: tensor<5xi64>, %c: tensor<4xi64>,
                         %s: tensor<200xf32>) -> (tensor<100x64xf32>, tensor<200x128xf32>) {
  %h = moe.grouped_matmul %x gather(%t) weight(%w) offsets(%o) counts(%c) activation relu
      : tensor<100x64xbf16>, tensor<200xi32>, tensor<4x64x128xbf16>, tensor<5xi64>,
        tensor<4xi64> -> tensor<200x128xf32>
  %y = moe.grouped_matmul %h weight(%w2) offsets(%o) counts(%c) scatter(%t, %s)
      : tensor<200x128xf32>, tensor<4x128x64xbf16>, tensor<5xi64>, tensor<4xi64>,
        tensor<200xi32>, tensor<200xf32> -> tensor<100x64xf32>
  return %y, %h : tensor<100x64xf32>, tensor<200x128xf32>
}

// -----

// A top-1 routing's down projection whose sum is only rounded to the weights'
// type (a bf16 layer's output): every token row receives at most one row, so
// the epilogue stores each row's scaled value rounded to bf16 into a
// bf16-filled output (unique_targets): no f32 sum, no atomic adds, no cast
// after. With k = 2 the rows are added into f32 atomically and the cast
// stays; a top-1 scatter rounded to another type stores into f32 (no atomic
// adds either) and keeps the cast.
// BUF-LABEL: func @top1_rounded
// BUF: %[[Y:.*]] = memref.alloc() : memref<64x64xbf16>
// BUF: linalg.fill ins(%{{.*}} : bf16) outs(%[[Y]]
// BUF: moe.grouped_matmul_buffers {{.*}} scatter({{.*}}) unique_targets out(%[[Y]])
// BUF-NOT: arith.truncf
// BUF: %[[YT:.*]] = bufferization.to_tensor %[[Y]] restrict writable : memref<64x64xbf16> to tensor<64x64xbf16>
// BUF: return %[[YT]]
// BUF-LABEL: func @top2_rounded
// BUF: memref.alloc() : memref<64x64xf32>
// BUF: moe.grouped_matmul_buffers {{.*}} scatter({{.*}}) out(
// BUF: arith.truncf {{.*}} : tensor<64x64xf32> to tensor<64x64xbf16>
// BUF-LABEL: func @top1_other_type
// BUF: memref.alloc() : memref<64x64xf32>
// BUF: moe.grouped_matmul_buffers {{.*}} scatter({{.*}}) unique_targets out(
// BUF: arith.truncf {{.*}} : tensor<64x64xf32> to tensor<64x64xf16>
// CHECK-LABEL: func @top1_rounded
// CHECK: gpu.launch
// CHECK-NOT: memref.atomic_rmw
// CHECK: %[[G:.*]] = memref.load %{{.*}}[%{{.*}}] : memref<64xf32
// CHECK: %[[V:.*]] = arith.mulf %[[G]], %{{.*}} : f32
// CHECK: %[[R:.*]] = arith.truncf %[[V]] : f32 to bf16
// CHECK: memref.store %[[R]], %{{.*}} : memref<64x64xbf16>
// CHECK: gpu.terminator
// CHECK-LABEL: func @top2_rounded
// CHECK: memref.atomic_rmw addf
// CHECK-LABEL: func @top1_other_type
// CHECK-NOT: memref.atomic_rmw
// CHECK: memref.store %{{.*}}, %{{.*}} : memref<64x64xf32>
// CHECK: gpu.terminator
// HOST-LABEL: func @top1_rounded
// HOST-NOT: memref.atomic_rmw
// HOST: arith.truncf %{{.*}} : f32 to bf16
// HOST-LABEL: func @top2_rounded
func.func @top1_rounded(%p: tensor<64x4xf32>, %h: tensor<64x128xbf16>, %w: tensor<4x128x64xbf16>)
    -> tensor<64x64xbf16> {
  %experts, %gates, %keep, %counts, %offsets, %row_token, %row_gate =
      moe.route_rows %p k = 1 group_size = 64 capacity = 20 priority = position : tensor<64x4xf32>
  %y = moe.grouped_matmul %h weight(%w) offsets(%offsets) counts(%counts) scatter(%row_token, %row_gate)
      : tensor<64x128xbf16>, tensor<4x128x64xbf16>, tensor<5xi64>, tensor<4xi64>,
        tensor<64xi32>, tensor<64xf32> -> tensor<64x64xf32>
  %r = arith.truncf %y : tensor<64x64xf32> to tensor<64x64xbf16>
  return %r : tensor<64x64xbf16>
}

func.func @top2_rounded(%p: tensor<32x4xf32>, %h: tensor<64x128xbf16>, %w: tensor<4x128x64xbf16>)
    -> tensor<64x64xbf16> {
  %experts, %gates, %keep, %counts, %offsets, %row_token, %row_gate =
      moe.route_rows %p k = 2 group_size = 32 priority = position : tensor<32x4xf32>
  %y = moe.grouped_matmul %h weight(%w) offsets(%offsets) counts(%counts) scatter(%row_token, %row_gate)
      : tensor<64x128xbf16>, tensor<4x128x64xbf16>, tensor<5xi64>, tensor<4xi64>,
        tensor<64xi32>, tensor<64xf32> -> tensor<64x64xf32>
  %r = arith.truncf %y : tensor<64x64xf32> to tensor<64x64xbf16>
  return %r : tensor<64x64xbf16>
}

func.func @top1_other_type(%p: tensor<64x4xf32>, %h: tensor<64x128xbf16>, %w: tensor<4x128x64xbf16>)
    -> tensor<64x64xf16> {
  %experts, %gates, %keep, %counts, %offsets, %row_token, %row_gate =
      moe.route_rows %p k = 1 group_size = 64 priority = position : tensor<64x4xf32>
  %y = moe.grouped_matmul %h weight(%w) offsets(%offsets) counts(%counts) scatter(%row_token, %row_gate)
      : tensor<64x128xbf16>, tensor<4x128x64xbf16>, tensor<5xi64>, tensor<4xi64>,
        tensor<64xi32>, tensor<64xf32> -> tensor<64x64xf32>
  %r = arith.truncf %y : tensor<64x64xf32> to tensor<64x64xf16>
  return %r : tensor<64x64xf16>
}
