func.func @experts_rank(%e: tensor<16xi32>) {
  %s, %k, %c = moe.assign_slots %e num_experts = 4 group_size = 8 priority = position : tensor<16xi32>
  return
}
