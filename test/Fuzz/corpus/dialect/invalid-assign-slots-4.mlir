func.func @dynamic_probs(%e: tensor<16x2xi32>, %p: tensor<16x?xf32>) {
  %s, %k, %c = moe.assign_slots %e num_experts = 4 group_size = 8 priority = batch_prioritized(%p) : tensor<16x2xi32>, tensor<16x?xf32>
  return
}
