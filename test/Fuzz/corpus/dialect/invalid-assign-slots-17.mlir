func.func @i64_experts(%e: tensor<16x2xi64>) {
  %s, %k, %c = moe.assign_slots %e num_experts = 4 group_size = 8 priority = position : tensor<16x2xi64>
  return
}
