func.func @too_many_choices(%e: tensor<16x5xi32>) {
  %s, %k, %c = moe.assign_slots %e num_experts = 4 group_size = 8 priority = position : tensor<16x5xi32>
  return
}
