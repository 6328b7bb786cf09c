// Every verifier rule of the spec section 8 forms.
// RUN: moe-opt %s -split-input-file -verify-diagnostics

func.func @groups_not_dividing(%x: tensor<16x32xf32>, %r: tensor<8x32xf32>, %wi: tensor<8x32x64xf32>, %wo: tensor<8x64x32xf32>) {
  // expected-error @+1 {{'num_groups' must be positive and divide the number of experts (8), got 3}}
  %y, %t, %d, %lb, %z = moe.layer %x router(%r) w_in(%wi) w_out(%wo) top_k 2 activation relu priority position num_groups 3
      : tensor<16x32xf32>, tensor<8x32xf32>, tensor<8x32x64xf32>, tensor<8x64x32xf32>
  return
}

// -----

func.func @kept_groups(%x: tensor<16x32xf32>, %r: tensor<8x32xf32>, %wi: tensor<8x32x64xf32>, %wo: tensor<8x64x32xf32>) {
  // expected-error @+1 {{'topk_groups' must be between 1 and 'num_groups' (4), got 5}}
  %y, %t, %d, %lb, %z = moe.layer %x router(%r) w_in(%wi) w_out(%wo) top_k 2 activation relu priority position num_groups 4 topk_groups 5
      : tensor<16x32xf32>, tensor<8x32xf32>, tensor<8x32x64xf32>, tensor<8x64x32xf32>
  return
}

// -----

func.func @top2_sum_single(%x: tensor<16x32xf32>, %r: tensor<8x32xf32>, %wi: tensor<8x32x64xf32>, %wo: tensor<8x64x32xf32>) {
  // expected-error @+1 {{'group_score top2_sum' needs at least two experts per group, got 1}}
  %y, %t, %d, %lb, %z = moe.layer %x router(%r) w_in(%wi) w_out(%wo) top_k 2 activation relu priority position num_groups 8 topk_groups 4 group_score top2_sum
      : tensor<16x32xf32>, tensor<8x32xf32>, tensor<8x32x64xf32>, tensor<8x64x32xf32>
  return
}

// -----

func.func @k_beyond_groups(%x: tensor<16x32xf32>, %r: tensor<8x32xf32>, %wi: tensor<8x32x64xf32>, %wo: tensor<8x64x32xf32>) {
  // expected-error @+1 {{'top_k' (5) exceeds the experts of the 'topk_groups' best groups (4)}}
  %y, %t, %d, %lb, %z = moe.layer %x router(%r) w_in(%wi) w_out(%wo) top_k 5 activation relu priority position num_groups 4 topk_groups 2
      : tensor<16x32xf32>, tensor<8x32xf32>, tensor<8x32x64xf32>, tensor<8x64x32xf32>
  return
}

// -----

func.func @gate_scale(%x: tensor<16x32xf32>, %r: tensor<8x32xf32>, %wi: tensor<8x32x64xf32>, %wo: tensor<8x64x32xf32>) {
  // expected-error @+1 {{'gate_scale' must be a positive finite number, got -1}}
  %y, %t, %d, %lb, %z = moe.layer %x router(%r) w_in(%wi) w_out(%wo) top_k 2 activation relu priority position gate_scale -1.0
      : tensor<16x32xf32>, tensor<8x32xf32>, tensor<8x32x64xf32>, tensor<8x64x32xf32>
  return
}

// -----

func.func @bias_shape(%x: tensor<16x32xf32>, %r: tensor<8x32xf32>, %b: tensor<4xf32>, %wi: tensor<8x32x64xf32>, %wo: tensor<8x64x32xf32>) {
  // expected-error @+1 {{'score_bias' must have shape [8] (E), got [4]}}
  %y, %t, %d, %lb, %z = moe.layer %x router(%r) score_bias(%b) w_in(%wi) w_out(%wo) top_k 2 activation relu priority position
      : tensor<16x32xf32>, tensor<8x32xf32>, tensor<4xf32>, tensor<8x32x64xf32>, tensor<8x64x32xf32>
  return
}

// -----

func.func @ec_top_k(%x: tensor<16x32xf32>, %r: tensor<8x32xf32>, %wi: tensor<8x32x64xf32>, %wo: tensor<8x64x32xf32>) {
  // expected-error @+1 {{'routing experts_choose' needs 'top_k' 1 (each expert chooses its tokens), got 2}}
  %y, %t, %d, %lb, %z = moe.layer %x router(%r) w_in(%wi) w_out(%wo) top_k 2 activation relu capacity_factor 1.0 priority position routing experts_choose
      : tensor<16x32xf32>, tensor<8x32xf32>, tensor<8x32x64xf32>, tensor<8x64x32xf32>
  return
}

// -----

func.func @ec_priority(%x: tensor<16x32xf32>, %r: tensor<8x32xf32>, %wi: tensor<8x32x64xf32>, %wo: tensor<8x64x32xf32>) {
  // expected-error @+1 {{'priority' does not apply to 'routing experts_choose'}}
  %y, %t, %d, %lb, %z = moe.layer %x router(%r) w_in(%wi) w_out(%wo) top_k 1 activation relu capacity_factor 1.0 priority batch_prioritized routing experts_choose
      : tensor<16x32xf32>, tensor<8x32xf32>, tensor<8x32x64xf32>, tensor<8x64x32xf32>
  return
}

// -----

func.func @ec_sigmoid(%x: tensor<16x32xf32>, %r: tensor<8x32xf32>, %wi: tensor<8x32x64xf32>, %wo: tensor<8x64x32xf32>) {
  // expected-error @+1 {{'score_function sigmoid' does not apply to 'routing experts_choose'}}
  %y, %t, %d, %lb, %z = moe.layer %x router(%r) w_in(%wi) w_out(%wo) top_k 1 activation relu capacity_factor 1.0 priority position routing experts_choose score_function sigmoid
      : tensor<16x32xf32>, tensor<8x32xf32>, tensor<8x32x64xf32>, tensor<8x64x32xf32>
  return
}

// -----

func.func @ec_groups(%x: tensor<16x32xf32>, %r: tensor<8x32xf32>, %wi: tensor<8x32x64xf32>, %wo: tensor<8x64x32xf32>) {
  // expected-error @+1 {{expert groups does not apply to 'routing experts_choose'}}
  %y, %t, %d, %lb, %z = moe.layer %x router(%r) w_in(%wi) w_out(%wo) top_k 1 activation relu capacity_factor 1.0 priority position routing experts_choose num_groups 2
      : tensor<16x32xf32>, tensor<8x32xf32>, tensor<8x32x64xf32>, tensor<8x64x32xf32>
  return
}

// -----

func.func @ec_dropless(%x: tensor<16x32xf32>, %r: tensor<8x32xf32>, %wi: tensor<8x32x64xf32>, %wo: tensor<8x64x32xf32>) {
  // expected-error @+1 {{'routing experts_choose' needs a capacity ('capacity_factor' or 'expert_capacity')}}
  %y, %t, %d, %lb, %z = moe.layer %x router(%r) w_in(%wi) w_out(%wo) top_k 1 activation relu priority position routing experts_choose
      : tensor<16x32xf32>, tensor<8x32xf32>, tensor<8x32x64xf32>, tensor<8x64x32xf32>
  return
}

// -----

func.func @shared_missing_out(%x: tensor<16x32xf32>, %r: tensor<8x32xf32>, %wi: tensor<8x32x64xf32>, %wo: tensor<8x64x32xf32>, %si: tensor<32x48xf32>) {
  // expected-error @+1 {{the shared expert needs 'shared_w_out'}}
  %y, %t, %d, %lb, %z = moe.layer %x router(%r) w_in(%wi) w_out(%wo) shared_w_in(%si) top_k 2 activation relu priority position
      : tensor<16x32xf32>, tensor<8x32xf32>, tensor<8x32x64xf32>, tensor<8x64x32xf32>, tensor<32x48xf32>
  return
}

// -----

func.func @shared_gated(%x: tensor<16x32xf32>, %r: tensor<8x32xf32>, %wi: tensor<8x32x64xf32>, %wg: tensor<8x32x64xf32>, %wo: tensor<8x64x32xf32>, %si: tensor<32x48xf32>, %so: tensor<48x32xf32>) {
  // expected-error @+1 {{the gated activation needs 'shared_w_gate'}}
  %y, %t, %d, %lb, %z = moe.layer %x router(%r) w_in(%wi) w_gate(%wg) w_out(%wo) shared_w_in(%si) shared_w_out(%so) top_k 2 activation swiglu priority position
      : tensor<16x32xf32>, tensor<8x32xf32>, tensor<8x32x64xf32>, tensor<8x32x64xf32>, tensor<8x64x32xf32>, tensor<32x48xf32>, tensor<48x32xf32>
  return
}

// -----

func.func @shared_out_shape(%x: tensor<16x32xf32>, %r: tensor<8x32xf32>, %wi: tensor<8x32x64xf32>, %wo: tensor<8x64x32xf32>, %si: tensor<32x48xf32>, %so: tensor<40x32xf32>) {
  // expected-error @+1 {{'shared_w_out' must have shape [48, 32] (Fs, D), got [40, 32]}}
  %y, %t, %d, %lb, %z = moe.layer %x router(%r) w_in(%wi) w_out(%wo) shared_w_in(%si) shared_w_out(%so) top_k 2 activation relu priority position
      : tensor<16x32xf32>, tensor<8x32xf32>, tensor<8x32x64xf32>, tensor<8x64x32xf32>, tensor<32x48xf32>, tensor<40x32xf32>
  return
}

// -----

func.func @unknown_routing(%x: tensor<16x32xf32>, %r: tensor<8x32xf32>, %wi: tensor<8x32x64xf32>, %wo: tensor<8x64x32xf32>) {
  // expected-error @+1 {{unknown routing 'expert_choice' (expected tokens_choose or experts_choose)}}
  %y, %t, %d, %lb, %z = moe.layer %x router(%r) w_in(%wi) w_out(%wo) top_k 1 activation relu priority position routing expert_choice
      : tensor<16x32xf32>, tensor<8x32xf32>, tensor<8x32x64xf32>, tensor<8x64x32xf32>
  return
}

// -----

func.func @choice_keep(%s: tensor<16x8xf32>) {
  // expected-error @+1 {{'keep' must be between 1 and 'num_groups' (4), got 0}}
  %c = moe.choice_scores %s num_groups = 4 keep = 0 group_score max : tensor<16x8xf32>
  return
}

// -----

func.func @choice_bias(%s: tensor<16x8xf32>, %b: tensor<7xf32>) {
  // expected-error @+1 {{'bias' must have shape [8] (E), got [7]}}
  %c = moe.choice_scores %s bias(%b) num_groups = 1 keep = 1 group_score max : tensor<16x8xf32>, tensor<7xf32>
  return
}

// -----

func.func @choice_top2(%s: tensor<16x8xf32>) {
  // expected-error @+1 {{'group_score top2_sum' needs at least two experts per group, got 1}}
  %c = moe.choice_scores %s num_groups = 8 keep = 2 group_score top2_sum : tensor<16x8xf32>
  return
}

// -----

func.func @top_k_gate_scores(%p: tensor<16x8xf32>, %s: tensor<16x4xf32>) {
  // expected-error @+1 {{'gate_scores' must have shape [16, 8] (T, E), got [16, 4]}}
  %e, %g = moe.top_k %p k = 2 gate_scores(%s) : tensor<16x8xf32>, tensor<16x4xf32>
  return
}

// -----

func.func @top_k_gate_scale(%p: tensor<16x8xf32>) {
  // expected-error @+1 {{'gate_scale' must be a positive finite number, got 0}}
  %e, %g = moe.top_k %p k = 2 gate_scale = 0.0 : tensor<16x8xf32>
  return
}

// -----

func.func @expert_choice_capacity(%p: tensor<16x8xf32>) {
  // expected-error @+1 {{'capacity' must be between 1 and 'group_size' (8), got 9}}
  %e, %s, %k, %g, %c = moe.expert_choice %p group_size = 8 capacity = 9 : tensor<16x8xf32>
  return
}

// -----

func.func @expert_choice_group(%p: tensor<16x8xf32>) {
  // expected-error @+1 {{'group_size' (6) must divide the number of tokens (16)}}
  %e, %s, %k, %g, %c = moe.expert_choice %p group_size = 6 capacity = 2 : tensor<16x8xf32>
  return
}

// -----

func.func @shared_routed(%x: tensor<16x32xf32>, %y: tensor<8x32xf32>, %si: tensor<32x48xf32>, %so: tensor<48x32xf32>) {
  // expected-error @+1 {{'routed' must have shape [16, 32] (T, D), got [8, 32]}}
  %o = moe.shared_expert %x, %y w_in(%si) w_out(%so) activation relu
      : tensor<16x32xf32>, tensor<8x32xf32>, tensor<32x48xf32>, tensor<48x32xf32>
  return
}

// -----

func.func @shared_gate_shape(%x: tensor<16x32xf32>, %si: tensor<32x48xf32>, %so: tensor<48x32xf32>, %g: tensor<48xf32>) {
  // expected-error @+1 {{'gate' must have shape [32] (D), got [48]}}
  %o = moe.shared_expert %x, %x w_in(%si) w_out(%so) gate(%g) activation relu
      : tensor<16x32xf32>, tensor<16x32xf32>, tensor<32x48xf32>, tensor<48x32xf32>, tensor<48xf32>
  return
}

// -----

func.func @shared_w_gate(%x: tensor<16x32xf32>, %si: tensor<32x48xf32>, %sg: tensor<32x48xf32>, %so: tensor<48x32xf32>) {
  // expected-error @+1 {{'w_gate' needs a gated activation}}
  %o = moe.shared_expert %x, %x w_in(%si) w_gate(%sg) w_out(%so) activation relu
      : tensor<16x32xf32>, tensor<16x32xf32>, tensor<32x48xf32>, tensor<32x48xf32>, tensor<48x32xf32>
  return
}
