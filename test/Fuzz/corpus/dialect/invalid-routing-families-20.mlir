func.func @expert_choice_capacity(%p: tensor<16x8xf32>) {
  %e, %s, %k, %g, %c = moe.expert_choice %p group_size = 8 capacity = 9 : tensor<16x8xf32>
  return
}
