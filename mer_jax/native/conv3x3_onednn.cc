// oneDNN's 3x3 stride-1 'SAME' convolution for XLA:CPU, as three XLA FFI handlers
// (mer_jax/onednn.py builds this file with the system C++ compiler and registers them):
//
//   MerConv3x3Forward     x [N, H, W, Ci], w [3, 3, Ci, Co]   -> y [N, H, W, Co]
//   MerConv3x3InputGrad   dy [N, H, W, Co], w [3, 3, Ci, Co]  -> dx [N, H, W, Ci]
//   MerConv3x3WeightGrad  x [N, H, W, Ci], dy [N, H, W, Co]   -> dw [3, 3, Ci, Co]
//
// float32, row-major (NHWC activations, HWIO weights: JAX's layouts, no transposes).
// Why: XLA:CPU runs these layers 2-3x slower than oneDNN (Eigen below 17 channels,
// and a weight gradient that needs its shifted input columns materialised); oneDNN is
// what PyTorch runs on CPU (benchmarks/RESULTS.md). Activations stay in JAX's buffers;
// only the small weights are reordered into the layout oneDNN's kernel chose.
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>

#include "oneapi/dnnl/dnnl.hpp"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;
using dnnl::memory;
using tag = dnnl::memory::format_tag;
using dt = dnnl::memory::data_type;

namespace {

dnnl::engine& Engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

// One shape's primitive, made once and kept for the process (creating one JITs a
// kernel: milliseconds, against a step's microseconds of lookup).
struct Plan {
  dnnl::convolution_forward::primitive_desc fwd_pd;  // Also the backward ones' hint.
  dnnl::primitive prim;
  memory::desc src, dst; // x / dx and y / dy: NHWC, JAX's buffers as they are.
  memory::desc wei_md;   // The primitive's own weights layout.
  memory::desc user_wei; // HWIO.
  dnnl::reorder wei_reorder;  // user -> primitive (fwd, bwd data) or back (bwd weights).
  bool reorder_needed;
};

// kind: 0 forward, 1 input gradient, 2 weight gradient.
using Key = std::tuple<int, int64_t, int64_t, int64_t, int64_t, int64_t>;

Plan* GetPlan(int kind, int64_t n, int64_t h, int64_t w, int64_t ci, int64_t co) {
  static std::mutex mu;
  static std::map<Key, std::unique_ptr<Plan>> plans;
  std::lock_guard<std::mutex> lock(mu);
  Key key{kind, n, h, w, ci, co};
  auto it = plans.find(key);
  if (it != plans.end()) return it->second.get();
  auto& eng = Engine();
  memory::desc src({n, ci, h, w}, dt::f32, tag::nhwc);
  memory::desc dst({n, co, h, w}, dt::f32, tag::nhwc);
  memory::desc any_wei({co, ci, 3, 3}, dt::f32, tag::any);
  memory::desc user_wei({co, ci, 3, 3}, dt::f32, tag::hwio);
  memory::dims strides{1, 1}, pad{1, 1};
  auto plan = std::make_unique<Plan>();
  plan->fwd_pd = dnnl::convolution_forward::primitive_desc(
      eng, dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct, src,
      any_wei, dst, strides, pad, pad);
  plan->src = src;
  plan->dst = dst;
  plan->user_wei = user_wei;
  if (kind == 0) {
    plan->wei_md = plan->fwd_pd.weights_desc();
    plan->prim = dnnl::convolution_forward(plan->fwd_pd);
  } else if (kind == 1) {
    dnnl::convolution_backward_data::primitive_desc pd(
        eng, dnnl::algorithm::convolution_direct, src, any_wei, dst, strides, pad, pad,
        plan->fwd_pd);
    plan->wei_md = pd.weights_desc();
    plan->prim = dnnl::convolution_backward_data(pd);
  } else {
    dnnl::convolution_backward_weights::primitive_desc pd(
        eng, dnnl::algorithm::convolution_direct, src, any_wei, dst, strides, pad, pad,
        plan->fwd_pd);
    plan->wei_md = pd.diff_weights_desc();
    plan->prim = dnnl::convolution_backward_weights(pd);
  }
  plan->reorder_needed = plan->wei_md != user_wei;
  if (plan->reorder_needed) {
    plan->wei_reorder = kind == 2 ? dnnl::reorder(dnnl::reorder::primitive_desc(
                                        eng, plan->wei_md, eng, user_wei))
                                  : dnnl::reorder(dnnl::reorder::primitive_desc(
                                        eng, user_wei, eng, plan->wei_md));
  }
  Plan* out = plan.get();
  plans[key] = std::move(plan);
  return out;
}

ffi::Error Run(int kind, const float* a, const float* b, float* out, int64_t n, int64_t h,
               int64_t w, int64_t ci, int64_t co) {
  try {
    Plan* p = GetPlan(kind, n, h, w, ci, co);
    // One convolution at a time: each already spreads over every core (OpenMP), and
    // primitives share the library-managed scratchpad.
    static std::mutex running;
    std::lock_guard<std::mutex> lock(running);
    auto& eng = Engine();
    dnnl::stream stream(eng);
    const memory::desc &src = p->src, &dst = p->dst;
    if (kind == 0 || kind == 1) {
      // a: activations (x for forward, dy for input gradient), b: HWIO weights.
      memory user_w(p->user_wei, eng, const_cast<float*>(b));
      memory wei = user_w;
      if (p->reorder_needed) {
        wei = memory(p->wei_md, eng);
        p->wei_reorder.execute(stream, user_w, wei);
      }
      if (kind == 0) {
        memory x(src, eng, const_cast<float*>(a)), y(dst, eng, out);
        p->prim.execute(stream, {{DNNL_ARG_SRC, x}, {DNNL_ARG_WEIGHTS, wei}, {DNNL_ARG_DST, y}});
      } else {
        memory dy(dst, eng, const_cast<float*>(a)), dx(src, eng, out);
        p->prim.execute(stream,
                        {{DNNL_ARG_DIFF_DST, dy}, {DNNL_ARG_WEIGHTS, wei}, {DNNL_ARG_DIFF_SRC, dx}});
      }
    } else {
      // a: x, b: dy, out: HWIO weight gradient.
      memory x(src, eng, const_cast<float*>(a)), dy(dst, eng, const_cast<float*>(b));
      memory user_dw(p->user_wei, eng, out);
      memory dw = p->reorder_needed ? memory(p->wei_md, eng) : user_dw;
      p->prim.execute(stream,
                      {{DNNL_ARG_SRC, x}, {DNNL_ARG_DIFF_DST, dy}, {DNNL_ARG_DIFF_WEIGHTS, dw}});
      if (p->reorder_needed) p->wei_reorder.execute(stream, dw, user_dw);
    }
    stream.wait();
  } catch (const std::exception& e) {  // dnnl::error, std::bad_alloc: not across C.
    return ffi::Error::Internal(std::string("conv3x3_onednn: ") + e.what());
  }
  return ffi::Error::Success();
}

using Act = ffi::BufferR4<ffi::F32>;
using Out = ffi::ResultBufferR4<ffi::F32>;

// Shapes are checked here as well as in Python: a mismatch is an error, never a read
// past a buffer.
bool Consistent(const Act& act, const Act& other, int64_t c_act, int64_t c_other,
                bool other_is_weights) {
  auto a = act.dimensions(), o = other.dimensions();
  if (a[3] != c_act) return false;
  if (other_is_weights) return o[0] == 3 && o[1] == 3 && o[3] == c_other;
  return o[0] == a[0] && o[1] == a[1] && o[2] == a[2] && o[3] == c_other;
}

ffi::Error Mismatch() {
  return ffi::Error::InvalidArgument("conv3x3_onednn: inconsistent shapes");
}

ffi::Error Forward(Act x, Act w, Out y) {
  auto d = x.dimensions();
  int64_t ci = w.dimensions()[2], co = w.dimensions()[3];
  if (!Consistent(x, w, ci, co, true)) return Mismatch();
  return Run(0, x.typed_data(), w.typed_data(), y->typed_data(), d[0], d[1], d[2], ci, co);
}

ffi::Error InputGrad(Act dy, Act w, Out dx) {
  auto d = dy.dimensions();
  int64_t ci = w.dimensions()[2], co = w.dimensions()[3];
  if (!Consistent(dy, w, co, co, true)) return Mismatch();
  return Run(1, dy.typed_data(), w.typed_data(), dx->typed_data(), d[0], d[1], d[2], ci, co);
}

ffi::Error WeightGrad(Act x, Act dy, Out dw) {
  auto d = x.dimensions();
  int64_t ci = d[3], co = dy.dimensions()[3];
  if (!Consistent(x, dy, ci, co, false)) return Mismatch();
  return Run(2, x.typed_data(), dy.typed_data(), dw->typed_data(), d[0], d[1], d[2], ci, co);
}

}  // namespace

#define MER_CONV_HANDLER(name, impl) \
  XLA_FFI_DEFINE_HANDLER_SYMBOL(name, impl, ffi::Ffi::Bind().Arg<Act>().Arg<Act>().Ret<Act>())

MER_CONV_HANDLER(MerConv3x3Forward, Forward);
MER_CONV_HANDLER(MerConv3x3InputGrad, InputGrad);
MER_CONV_HANDLER(MerConv3x3WeightGrad, WeightGrad);
