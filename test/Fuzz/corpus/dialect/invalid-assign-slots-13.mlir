func.func @batch_prioritized_without_probs(%e: tensor<16x2xi32>) {
  %s, %k, %c = moe.assign_slots %e num_experts = 4 group_size = 8 capacity = 4 priority = batch_prioritized : tensor<16x2xi32>
  return
}
