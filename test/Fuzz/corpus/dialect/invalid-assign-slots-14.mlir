func.func @probs_with_position(%e: tensor<16x2xi32>, %p: tensor<16x4xf32>) {
  %s, %k, %c = moe.assign_slots %e num_experts = 4 group_size = 8 capacity = 4 priority = position(%p) : tensor<16x2xi32>, tensor<16x4xf32>
  return
}
