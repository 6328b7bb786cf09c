func.func @expert_choice(%p: tensor<4x8xf32>) -> (tensor<4x8xi32>, tensor<4x8xf32>, tensor<8xi64>) {
  %e, %s, %k, %g, %c = moe.expert_choice %p group_size = 2 capacity = 1 gate_scale = 2.0 : tensor<4x8xf32>
  return %s, %g, %c : tensor<4x8xi32>, tensor<4x8xf32>, tensor<8xi64>
}
