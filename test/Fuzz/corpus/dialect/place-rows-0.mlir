func.func @place_rows(%e: memref<16x2xi32>, %g: memref<16x2xf32>, %o: memref<16xi32>,
                      %k: memref<16x2xi1>, %c: memref<4xi64>, %off: memref<5xi64>,
                      %t: memref<48xi32>, %w: memref<48xf32>) {
  moe.place_rows_buffers experts(%e) gates(%g) order(%o) keep(%k) counts(%c) offsets(%off)
      rows(%t, %w) group_size = 8 capacity = 3 block = 4 row_check "bad row"
      : memref<16x2xi32>, memref<16x2xf32>, memref<16xi32>, memref<16x2xi1>, memref<4xi64>,
        memref<5xi64>, memref<48xi32>, memref<48xf32>
  moe.place_rows_buffers experts(%e) gates(%g) keep(%k) counts(%c) offsets(%off)
      rows(%t, %w) group_size = 16
      : memref<16x2xi32>, memref<16x2xf32>, memref<16x2xi1>, memref<4xi64>,
        memref<5xi64>, memref<48xi32>, memref<48xf32>
  return
}
