func.func @int64_min_num_experts(%e: tensor<16x2xi32>) {
  %s, %k, %c = moe.assign_slots %e num_experts = -9223372036854775808 group_size = 8 priority = position : tensor<16x2xi32>
  return
}
