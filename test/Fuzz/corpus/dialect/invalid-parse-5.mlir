func.func @assign_slots_unknown_priority(%e: tensor<16x2xi32>) {
  %s, %k, %c = moe.assign_slots %e num_experts = 4 group_size = 8 priority = batch_priority : tensor<16x2xi32>
  return
}
