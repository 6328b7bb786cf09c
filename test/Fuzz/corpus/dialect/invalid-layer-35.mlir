func.func @inferred_tokens_per_expert(%x: tensor<16x32xf32>, %r: tensor<4x32xf32>, %wi: tensor<4x32x64xf32>, %wo: tensor<4x64x32xf32>) {
  %0:5 = "moe.layer"(%x, %r, %wi, %wo) <{activation = #moe<activation relu>, top_k = 2 : i64, min_capacity = 1 : i64, priority = #moe<priority position>}> : (tensor<16x32xf32>, tensor<4x32xf32>, tensor<4x32x64xf32>, tensor<4x64x32xf32>) -> (tensor<16x32xf32>, tensor<8xi64>, tensor<i64>, tensor<f32>, tensor<f32>)
  return
}
