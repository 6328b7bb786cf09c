// Round trip of the spec section 8 forms: moe.layer's routing-family
// attributes and operands, moe.route's sigmoid, moe.choice_scores,
// moe.top_k with gate scores and scale, moe.expert_choice, the per-token
// count_dropped, the normalized balance loss and moe.shared_expert; directly
// and through the generic form.
// RUN: moe-opt %s | moe-opt | FileCheck %s
// RUN: moe-opt %s --mlir-print-op-generic | moe-opt | FileCheck %s

// CHECK-LABEL: func @deepseek_layer
// CHECK: moe.layer %{{.*}} router(%{{.*}}) score_bias(%{{.*}}) w_in(%{{.*}}) w_gate(%{{.*}}) w_out(%{{.*}}) shared_w_in(%{{.*}}) shared_w_gate(%{{.*}}) shared_w_out(%{{.*}}) top_k 2 activation swiglu normalize_gates priority position score_function sigmoid num_groups 4 topk_groups 2 group_score top2_sum gate_scale 2.500000e+00 : tensor<16x32xf32>, tensor<8x32xf32>, tensor<8xf32>, tensor<8x32x64xf32>, tensor<8x32x64xf32>, tensor<8x64x32xf32>, tensor<32x48xf32>, tensor<32x48xf32>, tensor<48x32xf32>
func.func @deepseek_layer(%x: tensor<16x32xf32>, %r: tensor<8x32xf32>, %b: tensor<8xf32>,
    %wi: tensor<8x32x64xf32>, %wg: tensor<8x32x64xf32>, %wo: tensor<8x64x32xf32>,
    %si: tensor<32x48xf32>, %sg: tensor<32x48xf32>, %so: tensor<48x32xf32>) -> tensor<16x32xf32> {
  %y, %tpe, %d, %lb, %z = moe.layer %x router(%r) score_bias(%b) w_in(%wi) w_gate(%wg)
      w_out(%wo) shared_w_in(%si) shared_w_gate(%sg) shared_w_out(%so)
      top_k 2 activation swiglu normalize_gates priority position
      score_function sigmoid num_groups 4 topk_groups 2 group_score top2_sum gate_scale 2.5
      : tensor<16x32xf32>, tensor<8x32xf32>, tensor<8xf32>, tensor<8x32x64xf32>,
        tensor<8x32x64xf32>, tensor<8x64x32xf32>, tensor<32x48xf32>, tensor<32x48xf32>,
        tensor<48x32xf32>
  return %y : tensor<16x32xf32>
}

// CHECK-LABEL: func @qwen2_layer
// CHECK: moe.layer %{{.*}} router(%{{.*}}) w_in(%{{.*}}) w_out(%{{.*}}) shared_w_in(%{{.*}}) shared_w_out(%{{.*}}) shared_gate(%{{.*}}) top_k 2 activation relu priority position : tensor<16x32xbf16>, tensor<4x32xbf16>, tensor<4x32x64xbf16>, tensor<4x64x32xbf16>, tensor<32x48xbf16>, tensor<48x32xbf16>, tensor<32xbf16>
// CHECK-SAME: {{$}}
func.func @qwen2_layer(%x: tensor<16x32xbf16>, %r: tensor<4x32xbf16>, %wi: tensor<4x32x64xbf16>,
    %wo: tensor<4x64x32xbf16>, %si: tensor<32x48xbf16>, %so: tensor<48x32xbf16>,
    %g: tensor<32xbf16>) -> tensor<16x32xbf16> {
  %y, %tpe, %d, %lb, %z = moe.layer %x router(%r) w_in(%wi) w_out(%wo) shared_w_in(%si)
      shared_w_out(%so) shared_gate(%g) top_k 2 activation relu priority position
      : tensor<16x32xbf16>, tensor<4x32xbf16>, tensor<4x32x64xbf16>, tensor<4x64x32xbf16>,
        tensor<32x48xbf16>, tensor<48x32xbf16>, tensor<32xbf16>
  return %y : tensor<16x32xbf16>
}

// CHECK-LABEL: func @expert_choice_layer
// CHECK: moe.layer {{.*}} top_k 1 activation gelu_tanh capacity_factor 2.000000e+00 group_size 8 priority position routing experts_choose gate_scale 1.500000e+00 :
func.func @expert_choice_layer(%x: tensor<16x32xf32>, %r: tensor<4x32xf32>,
    %wi: tensor<4x32x64xf32>, %wo: tensor<4x64x32xf32>) -> tensor<16x32xf32> {
  %y, %tpe, %d, %lb, %z = moe.layer %x router(%r) w_in(%wi) w_out(%wo)
      top_k 1 activation gelu_tanh capacity_factor 2.0 group_size 8 priority position
      routing experts_choose gate_scale 1.5
      : tensor<16x32xf32>, tensor<4x32xf32>, tensor<4x32x64xf32>, tensor<4x64x32xf32>
  return %y : tensor<16x32xf32>
}

// CHECK-LABEL: func @decomposed
// CHECK: moe.route %{{.*}}, %{{.*}} score_function sigmoid : tensor<16x32xf32>, tensor<8x32xf32>
// CHECK: moe.choice_scores %{{.*}} bias(%{{.*}}) num_groups = 4 keep = 2 group_score top2_sum : tensor<16x8xf32>, tensor<8xf32>
// CHECK: moe.choice_scores %{{.*}} num_groups = 2 keep = 1 group_score max : tensor<16x8xf32>
// CHECK: moe.top_k %{{.*}} k = 2 normalize gate_scores(%{{.*}}) gate_scale = 2.500000e+00 : tensor<16x8xf32>, tensor<16x8xf32>
// CHECK: moe.expert_choice %{{.*}} group_size = 8 capacity = 2 gate_scale = 2.000000e+00 : tensor<16x8xf32>
// CHECK: moe.count_dropped %{{.*}} tokens : tensor<16x8xi1>
// CHECK: moe.load_balance_loss %{{.*}}, %{{.*}} group_size = 16 normalize : tensor<16x8xf32>, tensor<16x2xi32>
// CHECK: moe.shared_expert %{{.*}}, %{{.*}} w_in(%{{.*}}) w_gate(%{{.*}}) w_out(%{{.*}}) gate(%{{.*}}) activation swiglu : tensor<16x32xf32>, tensor<16x32xf32>, tensor<32x48xf32>, tensor<32x48xf32>, tensor<48x32xf32>, tensor<32xf32>
func.func @decomposed(%x: tensor<16x32xf32>, %r: tensor<8x32xf32>, %b: tensor<8xf32>,
    %si: tensor<32x48xf32>, %sg: tensor<32x48xf32>, %so: tensor<48x32xf32>,
    %g: tensor<32xf32>) -> (tensor<16x2xf32>, tensor<16x8xf32>, tensor<i64>, tensor<f32>,
                            tensor<16x32xf32>, tensor<16x8xf32>) {
  %l, %s, %lse = moe.route %x, %r score_function sigmoid : tensor<16x32xf32>, tensor<8x32xf32>
  %c = moe.choice_scores %s bias(%b) num_groups = 4 keep = 2 group_score top2_sum
      : tensor<16x8xf32>, tensor<8xf32>
  %c2 = moe.choice_scores %s num_groups = 2 keep = 1 group_score max : tensor<16x8xf32>
  %e, %gates = moe.top_k %c k = 2 normalize gate_scores(%s) gate_scale = 2.5
      : tensor<16x8xf32>, tensor<16x8xf32>
  %ce, %cs, %ck, %cg, %cc = moe.expert_choice %s group_size = 8 capacity = 2
      gate_scale = 2.0 : tensor<16x8xf32>
  %n = moe.count_dropped %ck tokens : tensor<16x8xi1>
  %lb = moe.load_balance_loss %s, %e group_size = 16 normalize : tensor<16x8xf32>, tensor<16x2xi32>
  %y = moe.shared_expert %x, %x w_in(%si) w_gate(%sg) w_out(%so) gate(%g) activation swiglu
      : tensor<16x32xf32>, tensor<16x32xf32>, tensor<32x48xf32>, tensor<32x48xf32>,
        tensor<48x32xf32>, tensor<32xf32>
  return %gates, %cg, %n, %lb, %y, %c2 : tensor<16x2xf32>, tensor<16x8xf32>, tensor<i64>, tensor<f32>, tensor<16x32xf32>, tensor<16x8xf32>
}
