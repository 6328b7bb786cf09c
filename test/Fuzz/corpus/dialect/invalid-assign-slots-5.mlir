func.func @zero_num_experts(%e: tensor<16x2xi32>) {
  %s, %k, %c = moe.assign_slots %e num_experts = 0 group_size = 8 priority = position : tensor<16x2xi32>
  return
}
