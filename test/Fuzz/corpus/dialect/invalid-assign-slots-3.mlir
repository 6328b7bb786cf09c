func.func @dynamic_experts(%e: tensor<?x2xi32>) {
  %s, %k, %c = moe.assign_slots %e num_experts = 4 group_size = 8 priority = position : tensor<?x2xi32>
  return
}
