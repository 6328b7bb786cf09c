func.func @group_size_not_dividing(%e: tensor<16x2xi32>) {
  %s, %k, %c = moe.assign_slots %e num_experts = 4 group_size = 6 priority = position : tensor<16x2xi32>
  return
}
