func.func @dispatch_packed_rows(%x: tensor<16x32xf32>, %e: tensor<16x2xi32>, %s: tensor<16x2xi32>, %k: tensor<16x2xi1>) {
  %b = moe.dispatch %x, %e, %s, %k : tensor<16x32xf32>, tensor<16x2xi32>, tensor<16x2xi32>, tensor<16x2xi1> -> tensor<16x32xf32>
  return
}
