// moe-place-rows-to-gpu: the routing step's counting and placement as two
// kernels whose phases share memory and meet at block barriers, or (with
// host-loops) host loops per block, phase and thread. The numbers are
// checked against the float64 reference by the e2e suite (--backend
// gpu-loops: bpr_chunks has several chunks per group, capacity1 and
// deepseek_v2_capacity drop assignments, dropless_chunks has block = 8).
// RUN: moe-opt %s --moe-place-rows-to-gpu --canonicalize | FileCheck %s
// RUN: moe-opt %s --moe-place-rows-to-gpu=host-loops=1 --canonicalize | FileCheck %s --check-prefix=HOST

// Two groups of 150 ranking positions: chunks of 128 and 22 in each.
// CHECK-LABEL: func.func @place(
// CHECK-SAME: %[[E:[^:]*]]: memref<300x2xi32>
// Scratch: count and start per (chunk, rank, expert) (4 x 2 x 4), the
// within-chunk rank of every assignment, kept and earlier per (group, expert).
// CHECK: %[[COUNT:.*]] = memref.alloc() : memref<32xi64>
// CHECK: %[[START:.*]] = memref.alloc() : memref<32xi64>
// CHECK: %[[WITHIN:.*]] = memref.alloc() : memref<600xi64>
// CHECK: memref.alloc() : memref<8xi64>
// CHECK: memref.alloc() : memref<8xi64>
// The chunk kernel: 4 blocks of 128 threads, k x 128 experts in shared memory.
// CHECK: gpu.launch blocks({{.*}}) in ({{.*}} = %c4, {{.*}} = %c1, {{.*}} = %c1) threads(%{{.*}}, %{{.*}}, %{{.*}}) in ({{.*}} = %c128, {{.*}} = %c1, {{.*}} = %c1) dynamic_shared_memory_size %c1024_i32
// CHECK: %[[SHM:.*]] = gpu.dynamic_shared_memory
// CHECK: %[[SH:.*]] = memref.view %[[SHM]][%c0][] {{.*}} to memref<256xi32, #gpu.address_space<workgroup>>
// CHECK: memref.load %[[E]]
// CHECK: memref.store {{.*}}, %[[SH]]
// The rows are cleared by all 512 threads of the grid.
// CHECK: scf.for {{.*}} to %c600 step %c512
// CHECK: memref.store %c-1_i32
// CHECK: gpu.barrier
// Counting: a walk over the chunk's shared experts, before and after.
// CHECK: scf.for {{.*}} iter_args({{.*}}) -> (i64, i1)
// CHECK: memref.load %[[SH]]
// CHECK: memref.store {{.*}}, %[[WITHIN]]
// CHECK: scf.if
// CHECK: memref.store {{.*}}, %[[COUNT]]
// CHECK-NOT: gpu.barrier
// CHECK: gpu.terminator
// The place kernel: one block of 512 threads, four phases.
// CHECK: gpu.launch blocks({{.*}}) in ({{.*}} = %c1, {{.*}} = %c1, {{.*}} = %c1) threads({{.*}}) in ({{.*}} = %c512,
// CHECK-NOT: dynamic_shared_memory
// CHECK: memref.store {{.*}}, %[[START]]
// CHECK: arith.minsi {{.*}}, %c60_i64
// CHECK: gpu.barrier
// CHECK: gpu.barrier
// CHECK: arith.ceildivui {{.*}}, %c8_i64
// CHECK: gpu.barrier
// CHECK: memref.load %[[START]]
// CHECK: memref.load %[[WITHIN]]
// CHECK: cf.assert {{.*}}, "moe.route_rows at x: placed an assignment outside rows [0, 600)"
// CHECK-NOT: gpu.barrier
// CHECK: gpu.terminator
// CHECK: memref.dealloc %[[COUNT]]

// Host loops: per block, per phase, per thread; the shared memory a host
// buffer; no GPU op.
// HOST-LABEL: func.func @place(
// HOST-NOT: gpu.
// HOST: %[[SH:.*]] = memref.alloc() : memref<256xi32>
// HOST: scf.for %[[BLK:.*]] = %c0 to %c4 step %c1 {
// HOST-NEXT: scf.for {{.*}} = %c0 to %c128 step %c1 {
// HOST: memref.store {{.*}}, %[[SH]]
// HOST: scf.for {{.*}} = %c0 to %c128 step %c1 {
// HOST: memref.load %[[SH]]
// HOST: memref.dealloc %[[SH]]
// HOST-COUNT-4: scf.for {{.*}} = %c0 to %c512 step %c1 {
// HOST-NOT: gpu.
// HOST: return
func.func @place(%e: memref<300x2xi32>, %g: memref<300x2xf32>, %o: memref<300xi32>,
                 %k: memref<300x2xi1>, %c: memref<4xi64>, %off: memref<5xi64>,
                 %t: memref<600xi32>, %w: memref<600xf32>) {
  moe.place_rows_buffers experts(%e) gates(%g) order(%o) keep(%k) counts(%c) offsets(%off)
      rows(%t, %w) group_size = 150 capacity = 60 block = 8
      row_check "moe.route_rows at x: placed an assignment outside rows [0, 600)"
      : memref<300x2xi32>, memref<300x2xf32>, memref<300xi32>, memref<300x2xi1>, memref<4xi64>,
        memref<5xi64>, memref<600xi32>, memref<600xf32>
  return
}
