func.func @dispatch_buffer_width(%x: tensor<16x32xf32>, %e: tensor<16x2xi32>, %s: tensor<16x2xi32>, %k: tensor<16x2xi1>) {
  %b = moe.dispatch %x, %e, %s, %k : tensor<16x32xf32>, tensor<16x2xi32>, tensor<16x2xi32>, tensor<16x2xi1> -> tensor<4x8x16xf32>
  return
}
