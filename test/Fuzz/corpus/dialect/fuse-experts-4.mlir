func.func @slots_used(%p: tensor<8x4xf32>, %x: tensor<8x16xf32>,
    %wi: tensor<4x16x24xf32>, %wo: tensor<4x24x16xf32>)
    -> (tensor<8x16xf32>, tensor<8x2xi32>) {
  %e, %g = moe.top_k %p k = 2 : tensor<8x4xf32>
  %s, %k, %c = moe.assign_slots %e num_experts = 4 group_size = 8 priority = position : tensor<8x2xi32>
  %o, %t, %rg = moe.sort_by_expert %e, %s, %k, %g, %c
      : tensor<8x2xi32>, tensor<8x2xi32>, tensor<8x2xi1>, tensor<8x2xf32>, tensor<4xi64>
      -> tensor<5xi64>, tensor<16xi32>, tensor<16xf32>
  %h = moe.grouped_matmul %x gather(%t) weight(%wi) offsets(%o) counts(%c) activation relu
      : tensor<8x16xf32>, tensor<16xi32>, tensor<4x16x24xf32>, tensor<5xi64>, tensor<4xi64> -> tensor<16x24xf32>
  %y = moe.grouped_matmul %h weight(%wo) offsets(%o) counts(%c) scatter(%t, %rg)
      : tensor<16x24xf32>, tensor<4x24x16xf32>, tensor<5xi64>, tensor<4xi64>, tensor<16xi32>, tensor<16xf32> -> tensor<8x16xf32>
  return %y, %s : tensor<8x16xf32>, tensor<8x2xi32>
}
