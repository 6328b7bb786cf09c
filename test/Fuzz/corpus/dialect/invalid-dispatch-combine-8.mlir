func.func @dispatch_padded_no_experts(%x: tensor<16x32xf32>, %e: tensor<16x2xi32>, %s: tensor<16x2xi32>, %k: tensor<16x2xi1>) {
  %b = moe.dispatch %x, %e, %s, %k : tensor<16x32xf32>, tensor<16x2xi32>, tensor<16x2xi32>, tensor<16x2xi1> -> tensor<0x8x32xf32>
  return
}
