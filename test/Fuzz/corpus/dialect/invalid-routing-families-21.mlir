func.func @expert_choice_group(%p: tensor<16x8xf32>) {
  %e, %s, %k, %g, %c = moe.expert_choice %p group_size = 6 capacity = 2 : tensor<16x8xf32>
  return
}
