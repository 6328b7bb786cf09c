func.func @bf16_probs(%e: tensor<16x2xi32>, %p: tensor<16x4xbf16>) {
  %s, %k, %c = moe.assign_slots %e num_experts = 4 group_size = 8 priority = batch_prioritized(%p) : tensor<16x2xi32>, tensor<16x4xbf16>
  return
}
