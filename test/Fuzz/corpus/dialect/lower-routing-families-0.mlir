func.func @sigmoid(%x: tensor<8x16xf32>, %r: tensor<4x16xf32>) -> (tensor<8x4xf32>, tensor<8xf32>) {
  %l, %s, %lse = moe.route %x, %r score_function sigmoid : tensor<8x16xf32>, tensor<4x16xf32>
  return %s, %lse : tensor<8x4xf32>, tensor<8xf32>
}
