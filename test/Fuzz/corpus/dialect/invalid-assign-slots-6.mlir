func.func @negative_num_experts_generic(%e: tensor<16x2xi32>) {
  %0:3 = "moe.assign_slots"(%e) <{group_size = 8 : i64, num_experts = -4 : i64, priority = #moe<priority position>}> : (tensor<16x2xi32>) -> (tensor<16x2xi32>, tensor<16x2xi1>, tensor<4xi64>)
  return
}
