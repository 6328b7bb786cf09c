func.func @missing_group_size(%e: tensor<16x2xi32>) {
  %0:3 = "moe.assign_slots"(%e) <{num_experts = 4 : i64}> : (tensor<16x2xi32>) -> (tensor<16x2xi32>, tensor<16x2xi1>, tensor<4xi64>)
  return
}
