func.func @dispatch_slots_shape(%x: tensor<16x32xf32>, %e: tensor<16x2xi32>, %s: tensor<16x1xi32>, %k: tensor<16x2xi1>) {
  %b = moe.dispatch %x, %e, %s, %k : tensor<16x32xf32>, tensor<16x2xi32>, tensor<16x1xi32>, tensor<16x2xi1> -> tensor<4x8x32xf32>
  return
}
