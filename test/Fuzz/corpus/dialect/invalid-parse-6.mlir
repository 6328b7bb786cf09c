func.func @assign_slots_priority_not_keyword(%e: tensor<16x2xi32>) {
  %s, %k, %c = moe.assign_slots %e num_experts = 4 group_size = 8 priority = 1 : tensor<16x2xi32>
  return
}
