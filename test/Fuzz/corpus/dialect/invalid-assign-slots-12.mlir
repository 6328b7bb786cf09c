func.func @capacity_zero(%e: tensor<16x2xi32>) {
  %s, %k, %c = moe.assign_slots %e num_experts = 4 group_size = 8 capacity = 0 priority = position : tensor<16x2xi32>
  return
}
