func.func @packed_without_capacity(%e: tensor<8x2xi32>) {
  %s, %k, %c = moe.assign_slots %e num_experts = 4 group_size = 8 priority = position packed : tensor<8x2xi32>
  return
}
