func.func @place_rows_order(%e: memref<16x2xi32>, %g: memref<16x2xf32>, %r: memref<15xi32>, %k: memref<16x2xi1>, %c: memref<4xi64>, %o: memref<5xi64>, %t: memref<32xi32>, %w: memref<32xf32>) {
  moe.place_rows_buffers experts(%e) gates(%g) order(%r) keep(%k) counts(%c) offsets(%o) rows(%t, %w) group_size = 8 capacity = 0 block = 0
      : memref<16x2xi32>, memref<16x2xf32>, memref<15xi32>, memref<16x2xi1>, memref<4xi64>, memref<5xi64>, memref<32xi32>, memref<32xf32>
  return
}
