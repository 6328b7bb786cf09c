func.func @probs_tokens(%e: tensor<16x2xi32>, %p: tensor<8x4xf32>) {
  %s, %k, %c = moe.assign_slots %e num_experts = 4 group_size = 8 capacity = 4 priority = batch_prioritized(%p) : tensor<16x2xi32>, tensor<8x4xf32>
  return
}
