// One member's net on the host (flow_host_net.h): forward pass, N, backward pass with any
// slopes, and single-preactivation forward-mode rates.
#include "flow_host_net.h"

namespace ncflab::flow_detail {
namespace {

double integer_power(double z, int64_t p) {
  double out = 1;
  for (int64_t k = 0; k < p; ++k) out *= z;
  return out;
}

std::vector<double> host_values(const torch::Tensor& t) {
  const auto host = t.detach().to(torch::kCPU, torch::kFloat64).contiguous();
  return {host.data_ptr<double>(), host.data_ptr<double>() + host.numel()};
}

}  // namespace

double dot(const double* a, const double* b, int64_t size) {
  double sum = 0;
  for (int64_t i = 0; i < size; ++i) sum += a[i] * b[i];
  return sum;
}

std::vector<double> tangent_part(const double* direction, const double* row, int64_t size) {
  const double radial = dot(direction, row, size) / dot(row, row, size);
  std::vector<double> out(static_cast<size_t>(size));
  for (int64_t i = 0; i < size; ++i) out[static_cast<size_t>(i)] = direction[i] - radial * row[i];
  return out;
}

HostNet::HostNet(const Ncf& ncf)
    : learned_output_(ncf.options().kind() == ModelKind::feedforward),
      p_(ncf.options().activation().p()),
      alpha_(ncf.options().activation().alpha()),
      samples_(ncf.inputs().size(0)),
      parameters_(ncf.parameters()),
      inputs_t_(host_values(ncf.inputs().t())),
      ybar_(host_values(ncf.ybar())),
      input_norms_(host_values(ncf.inputs().norm(2, 1))) {
  int64_t offset = 0;
  for (const auto& shape : ncf.layer_shapes()) {
    offsets_.push_back(offset);
    fan_ins_.push_back(shape[1]);
    offset += shape[0] * shape[1];
  }
  for (int64_t l = 0; l < ncf.hidden_layers(); ++l) {
    widths_.push_back(ncf.layer_shapes()[static_cast<size_t>(l)][0]);
  }
}

void HostNet::forward(const double* row, const UnitSamples* sides, HostPass& pass) const {
  const int64_t n = samples_;
  const size_t layers = hidden_layers();
  pass.preactivations.resize(layers);
  pass.activations.resize(layers);
  const double c_negative = p_ % 2 == 0 ? -alpha_ : alpha_;
  const double* below = inputs_t_.data();  // [k_{l−1}, n]
  for (size_t l = 0; l < layers; ++l) {
    const int64_t units = widths_[l];
    const int64_t fan_in = fan_ins_[l];
    const double* w = weights(row, l);
    auto& z = pass.preactivations[l];
    z.assign(static_cast<size_t>(units * n), 0.0);
    for (int64_t j = 0; j < units; ++j) {
      double* zj = z.data() + j * n;
      for (int64_t c = 0; c < fan_in; ++c) {
        const double weight = w[j * fan_in + c];
        const double* x = below + c * n;
        for (int64_t i = 0; i < n; ++i) zj[i] += weight * x[i];
      }
    }
    auto& a = pass.activations[l];
    a.resize(z.size());
    if (sides) {
      const auto& side = (*sides)[l];
      for (size_t e = 0; e < z.size(); ++e) a[e] = side[e] * z[e];
    } else if (p_ == 1) {
      for (size_t e = 0; e < z.size(); ++e) a[e] = z[e] > 0 ? z[e] : alpha_ * z[e];
    } else {
      for (size_t e = 0; e < z.size(); ++e) {
        a[e] = (z[e] > 0 ? 1.0 : c_negative) * integer_power(z[e], p_);
      }
    }
    below = a.data();
  }
  const auto& top = pass.activations.back();
  pass.outputs.assign(static_cast<size_t>(n), 0.0);
  const double* w = learned_output_ ? weights(row, layers) : nullptr;
  for (int64_t j = 0; j < widths_.back(); ++j) {
    const double weight = w ? w[j] : 1.0;
    const double* a = top.data() + j * n;
    for (int64_t i = 0; i < n; ++i) pass.outputs[static_cast<size_t>(i)] += weight * a[i];
  }
}

double HostNet::value(const HostPass& pass) const {
  double total = 0;
  for (size_t i = 0; i < ybar_.size(); ++i) total += ybar_[i] * pass.outputs[i];
  return total;
}

UnitSamples HostNet::derivatives(const HostPass& pass) const {
  const double c_negative = p_ % 2 == 0 ? -alpha_ : alpha_;
  UnitSamples out(pass.preactivations.size());
  for (size_t l = 0; l < out.size(); ++l) {
    const auto& z = pass.preactivations[l];
    auto& slope = out[l];
    slope.resize(z.size());
    for (size_t e = 0; e < z.size(); ++e) {
      slope[e] = p_ == 1 ? (z[e] > 0 ? 1.0 : alpha_)
                         : (z[e] > 0 ? 1.0 : c_negative) * static_cast<double>(p_) *
                               integer_power(z[e], p_ - 1);
    }
  }
  return out;
}

// δ_l = ∂N/∂z_l, from the top: δ = w_K ⊗ ȳ ⊙ slope, then ∂N/∂W_l = δ_l a_{l−1}ᵀ and
// δ_{l−1} = slope ⊙ W_lᵀ δ_l.
void HostNet::gradient(const double* row, const HostPass& pass, const UnitSamples& slopes,
                       double* gradient) const {
  const int64_t n = samples_;
  const size_t layers = hidden_layers();
  const auto& top = pass.activations.back();
  const int64_t top_units = widths_.back();
  const double* w_out = learned_output_ ? weights(row, layers) : nullptr;
  std::vector<double> delta(static_cast<size_t>(top_units * n));
  for (int64_t j = 0; j < top_units; ++j) {
    const double* a = top.data() + j * n;
    const double* slope = slopes[layers - 1].data() + j * n;
    double* d = delta.data() + j * n;
    double sum = 0;
    for (int64_t i = 0; i < n; ++i) sum += ybar_[static_cast<size_t>(i)] * a[i];
    if (w_out) gradient[offsets_[layers] + j] = sum;
    const double weight = w_out ? w_out[j] : 1.0;
    for (int64_t i = 0; i < n; ++i) d[i] = weight * ybar_[static_cast<size_t>(i)] * slope[i];
  }
  std::vector<double> below_delta;
  for (size_t l = layers; l-- > 0;) {
    const int64_t units = widths_[l];
    const int64_t fan_in = fan_ins_[l];
    const double* below = l == 0 ? inputs_t_.data() : pass.activations[l - 1].data();
    const double* w = weights(row, l);
    double* g = gradient + offsets_[l];
    for (int64_t j = 0; j < units; ++j) {
      const double* d = delta.data() + j * n;
      for (int64_t c = 0; c < fan_in; ++c) {
        const double* a = below + c * n;
        double sum = 0;
        for (int64_t i = 0; i < n; ++i) sum += d[i] * a[i];
        g[j * fan_in + c] = sum;
      }
    }
    if (l == 0) break;
    below_delta.assign(static_cast<size_t>(fan_in * n), 0.0);
    for (int64_t j = 0; j < units; ++j) {
      const double* d = delta.data() + j * n;
      for (int64_t c = 0; c < fan_in; ++c) {
        const double weight = w[j * fan_in + c];
        double* out = below_delta.data() + c * n;
        for (int64_t i = 0; i < n; ++i) out[i] += weight * d[i];
      }
    }
    const auto& slope = slopes[l - 1];
    for (size_t e = 0; e < below_delta.size(); ++e) below_delta[e] *= slope[e];
    delta.swap(below_delta);
  }
}

// dz_1[:, i] = dW_1 x_i, dz_l[:, i] = dW_l a_{l−1}[:, i] + W_l (slope_{l−1}[:, i] ⊙ dz_{l−1}).
double HostNet::rate(const double* row, const HostPass& pass, const double* step,
                     const UnitSamples& slopes, size_t layer, int64_t unit, int64_t sample) const {
  const int64_t n = samples_;
  std::vector<double> dz;
  std::vector<double> next;
  for (size_t l = 0; l <= layer; ++l) {
    const int64_t fan_in = fan_ins_[l];
    const double* w = weights(row, l);
    const double* dw = weights(step, l);
    const double* below = l == 0 ? inputs_t_.data() : pass.activations[l - 1].data();
    const int64_t first = l == layer ? unit : 0;
    const int64_t last = l == layer ? unit + 1 : widths_[l];
    next.assign(static_cast<size_t>(widths_[l]), 0.0);
    for (int64_t j = first; j < last; ++j) {
      double sum = 0;
      for (int64_t c = 0; c < fan_in; ++c) {
        sum += dw[j * fan_in + c] * below[c * n + sample];
        if (l > 0) {
          sum += w[j * fan_in + c] * slopes[l - 1][static_cast<size_t>(c * n + sample)] *
                 dz[static_cast<size_t>(c)];
        }
      }
      next[static_cast<size_t>(j)] = sum;
    }
    dz.swap(next);
  }
  return dz[static_cast<size_t>(unit)];
}

}  // namespace ncflab::flow_detail
