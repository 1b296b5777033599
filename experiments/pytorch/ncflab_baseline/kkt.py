"""The NCF N(u) = ȳᵀH(X; u), its gradient and KKT residuals (smooth and kink-aware, the latter by
bounded least squares): what the metrics' ncf, kkt_residual and kink_residual columns report.
"""
import math

import torch

from .model import activation, forward, layer_degrees, layer_shapes, output, split, split_model


class Ncf:
    """N(u) = ȳᵀH(X; u) on flattened weights u, its gradient by autograd, KKT residuals."""

    def __init__(self, inputs, ybar, widths, kind, alpha, p):
        self.inputs, self.ybar, self.kind, self.alpha, self.p = inputs, ybar, kind, alpha, p
        self.shapes = layer_shapes(inputs.shape[1], widths, kind)
        self.total_degree = sum(layer_degrees(widths, p, kind))

    def value(self, u):
        with torch.no_grad():
            return float(self.ybar @ forward(split(u, self.shapes), self.inputs, self.alpha, self.p, self.kind))

    def value_and_gradient(self, u, slopes=None):
        """N(u) and ∇N(u); `slopes` (per hidden layer, [n, k_l]) replace σ'(z) in the backward pass."""
        u = u.detach().requires_grad_(True)
        h = self.inputs
        hidden, out = split_model(split(u, self.shapes), self.kind)
        for l, w in enumerate(hidden):
            z = h @ w.t()
            if slopes is None:
                h = activation(z, self.alpha, self.p)
            else:  # value σ(z), derivative `slopes`: a Clarke gradient at kinks
                h = activation(z, self.alpha, self.p).detach() + slopes[l] * (z - z.detach())
        value = self.ybar @ output(h, out)
        (gradient,) = torch.autograd.grad(value, u)
        return float(value), gradient

    def smooth_residual(self, unit):
        _, g = self.value_and_gradient(unit)
        return float(project_out(g, unit).norm() / g.norm().clamp_min(1e-300))

    def kink_residual(self, unit, kink_tol):
        """Smallest projected-gradient residual over slopes in [min(α,1), max(α,1)] at the
        preactivations within `kink_tol` of a kink (SPEC §1), found as ncflab does: bounded
        least squares per kinked layer (the gradient is affine in one layer's slopes),
        layer after layer in rounds, from σ'(z) and from the middle of the interval."""
        weights, zs, hs = self.hidden(unit)
        kinked = self.kinks(weights, zs, hs, kink_tol)
        if not any(bool(k.any()) for k in kinked):
            return self.smooth_residual(unit)
        low, high = min(self.alpha, 1.0), max(self.alpha, 1.0)
        derivative = [torch.where(z > 0, torch.ones_like(z), torch.full_like(z, self.alpha)) for z in zs]
        layers_with_kinks = sum(1 for k in kinked if bool(k.any()))
        rounds = 1 if layers_with_kinks == 1 else 100

        def gradient(slopes):
            return self.value_and_gradient(unit, slopes)[1]

        def descend(current):
            previous = math.inf
            for round_ in range(rounds):
                if round_ > 0:
                    g = gradient(current)
                    tangent = float(project_out(g, unit).norm())
                    if tangent <= 1e-15 * float(g.norm()) or tangent > 0.999 * previous:
                        break
                    previous = tangent
                for l, mask in enumerate(kinked):
                    where = mask.nonzero()
                    if len(where) == 0:
                        continue
                    base_slopes = [s.clone() for s in current]
                    base_slopes[l][mask] = low
                    base = gradient(base_slopes)
                    columns = []
                    for i, j in where.tolist():  # kink f at its high slope: one column each
                        slopes = [s.clone() for s in base_slopes]
                        slopes[l][i, j] = high
                        columns.append(gradient(slopes) - base)
                    matrix = project_out(torch.stack(columns), unit).t()
                    target = -project_out(base, unit)
                    t = bounded_least_squares(matrix.cpu(), target.cpu(), 0.0, 1.0).to(unit)
                    current[l][mask] = low + (high - low) * t
            g = gradient(current)
            return float(project_out(g, unit).norm() / g.norm().clamp_min(1e-300))

        best = descend([d.clone() for d in derivative])
        if layers_with_kinks > 1:  # not convex: also start from the middle of the interval
            middle = [torch.where(k, torch.full_like(d, 0.5 * (low + high)), d) for d, k in zip(derivative, kinked)]
            best = min(best, descend(middle))
        return best

    def hidden(self, unit):
        with torch.no_grad():
            weights = split(unit, self.shapes)
            zs, hs, h = [], [], self.inputs
            for w in split_model(weights, self.kind)[0]:
                z = h @ w.t()
                h = activation(z, self.alpha, self.p)
                zs.append(z)
                hs.append(h)
            return weights, zs, hs

    def kinks(self, weights, zs, hs, kink_tol):
        """Per hidden layer, [n, k_l] masks of preactivations at a kink: |z| ≤ kink_tol·‖w_j‖·‖a_i‖."""
        if self.p != 1 or self.alpha == 1.0:
            return [torch.zeros_like(z, dtype=torch.bool) for z in zs]
        masks, silent = [], None
        for l, z in enumerate(zs):
            row_norms = weights[l].norm(dim=1)[None, :]  # [1, k_l]
            sample_norms = (self.inputs if l == 0 else hs[l - 1]).norm(dim=1, keepdim=True)  # [n, 1]
            alive = row_norms > 0  # a removed unit (zero row) has no kinks
            near = (z.abs() <= kink_tol * row_norms * sample_norms) & alive
            if l > 0:  # every unit feeding sample i at a kink: count its zs as kinks directly
                near = near | (silent[:, None] & alive)
            silent = (near | ~alive).all(1)
            masks.append(near)
        return masks


def project_out(v, unit):
    """v − ⟨v, û⟩û, for a vector or the rows of a matrix."""
    return v - (v @ unit).unsqueeze(-1) * unit


def least_squares(matrix, target):
    return torch.linalg.lstsq(matrix, target.unsqueeze(1), driver="gelsd").solution.squeeze(1)


def bounded_least_squares(m, b, lower, upper):
    """argmin ‖m t − b‖ over lower ≤ t ≤ upper: Lawson–Hanson active set with two bounds."""
    count = m.shape[1]
    state = [-1] * count  # −1 at the lower bound, +1 at the upper, 0 free
    t = torch.full((count,), lower, dtype=m.dtype)
    scale = float(m.norm() * b.norm()) + 1e-300
    slack = 1e-12 * (upper - lower)
    for _ in range(3 * count + 20):
        w = m.t() @ (b - m @ t)
        gains = [float(w[f]) if state[f] == -1 else -float(w[f]) if state[f] == 1 else 0.0 for f in range(count)]
        release = max(range(count), key=lambda f: gains[f])
        if gains[release] <= 1e-13 * scale:
            break
        state[release] = 0
        for _ in range(count + 1):
            free = [f for f in range(count) if state[f] == 0]
            if not free:
                break
            held = t.clone()
            held[free] = 0.0
            candidate = least_squares(m[:, free], b - m @ held)
            current = t[free]
            if bool(((candidate >= lower - slack) & (candidate <= upper + slack)).all()):
                t[free] = candidate.clamp(lower, upper)
                break
            step = candidate - current
            to_lower = torch.where(candidate < lower, (lower - current) / step, torch.ones_like(step))
            to_upper = torch.where(candidate > upper, (upper - current) / step, torch.ones_like(step))
            alpha = min(max(float(torch.minimum(to_lower, to_upper).min()), 0.0), 1.0)
            t[free] = (current + alpha * step).clamp(lower, upper)
            for f in free:
                if t[f] <= lower + slack:
                    state[f], t[f] = -1, lower
                elif t[f] >= upper - slack:
                    state[f], t[f] = 1, upper
    return t
