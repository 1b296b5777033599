"""The NCF flow's field on nets with kinks (p = 1, α ≠ 1), as ncflab integrates it (README "The NCF flow"):
N is piecewise polynomial, so the flow carries a mode, the side of every hidden preactivation (its
slope: α below the kink, 1 above) and the kinks it slides along (Filippov: their slopes in [α, 1]
chosen so that they stay at zero). Within a mode the field is smooth and the step control holds;
the integrator locates where a step leaves its mode (a negative margin) and settles the new mode.
Written independently of ncflab's C++ from the same description; tensors here are [n, k_l].
"""
import math

import torch

from .model import activation, split, split_model

COLLAPSED = 1e-6  # rows and input columns scale margins down to this fraction of their balanced size
NEWTON_STEPS = 30


class Mode:
    """sides: per hidden layer [n, k_l] slopes; sliding: kinks (layer, sample, unit); slopes: theirs."""

    def __init__(self, sides):
        self.sides, self.sliding, self.slopes = sides, [], []


class KinkedField:
    def __init__(self, ncf, tolerance):
        self.ncf, self.tolerance = ncf, tolerance
        self.low, self.high = float(ncf.alpha), 1.0

    def forward(self, v, sides):
        """The mode's polynomial: weights, z and a = side·z per hidden layer, and N."""
        ncf = self.ncf
        weights = split(v, ncf.shapes)
        hidden, out = split_model(weights, ncf.kind)
        h, zs, hs = ncf.inputs, [], []
        for w, side in zip(hidden, sides):
            z = h @ w.t()
            h = side * z
            zs.append(z)
            hs.append(h)
        output = h.sum(1) if out is None else (h @ out.t()).squeeze(1)
        return weights, zs, hs, float(ncf.ybar @ output)

    def gradients(self, fw, slopes):
        """∇N for a batch of backward slope sets (per hidden layer [B, n, k_l]): [B, P]."""
        weights, zs, hs, _ = fw
        hidden, out = split_model(weights, self.ncf.kind)
        ybar, batch = self.ncf.ybar, slopes[0].shape[0]
        last = hs[-1]
        grads = [None] * len(weights)
        if out is None:
            dh = ybar[:, None].expand(-1, last.shape[1])
        else:
            dh = ybar[:, None] * out
            grads[-1] = (ybar @ last).unsqueeze(0).expand(batch, -1, -1)
        dh = dh.expand(batch, -1, -1)
        for l in reversed(range(len(hidden))):
            dz = dh * slopes[l]
            below = self.ncf.inputs if l == 0 else hs[l - 1]
            grads[l] = dz.transpose(1, 2) @ below
            if l > 0:
                dh = dz @ hidden[l]
        return torch.cat([g.reshape(batch, -1) for g in grads], 1)

    def rates(self, fw, row, directions, sides, sliding, kinks):
        """dz/ds of `kinks` along the tangent part of each direction [B, P]: [B, F]. Sliding kinks pass
        nothing on (their dz is 0 at the solution)."""
        weights, zs, hs, _ = fw
        hidden, _ = split_model(weights, self.ncf.kind)
        radial = directions @ row / (row @ row)
        tangent = directions - radial[:, None] * row
        steps, offset = [], 0
        for rows, cols in self.ncf.shapes[:len(hidden)]:
            steps.append(tangent[:, offset:offset + rows * cols].reshape(-1, rows, cols))
            offset += rows * cols
        passed = [s.clone() for s in sides]
        for layer, sample, unit in sliding:
            passed[layer][sample, unit] = 0.0
        dz = [self.ncf.inputs @ steps[0].transpose(1, 2)]
        for l in range(1, len(hidden)):
            dz.append(hs[l - 1] @ steps[l].transpose(1, 2) + (passed[l - 1] * dz[l - 1]) @ hidden[l].t())
        return torch.stack([dz[layer][:, sample, unit] for layer, sample, unit in kinks], 1)

    def slide(self, fw, row, sides, sliding, start):
        """Filippov slopes of `sliding` (dz/ds = 0 for all of them) by Newton, whose columns g(s + e_b) − g(s)
        are exact (∇N is affine in each slope); returns (slopes, ∇N at them)."""
        count = len(sliding)
        if count == 0:
            return [], self.gradients(fw, [s.unsqueeze(0) for s in sides])[0]
        slopes = torch.tensor(start if len(start) == count else [0.5 * (self.low + self.high)] * count,
                              dtype=torch.float64)
        one_layer = len({kink[0] for kink in sliding}) == 1
        shifts = torch.cat([torch.zeros(1, count, dtype=torch.float64), torch.eye(count, dtype=torch.float64)])

        def batch(values):
            out = [s.unsqueeze(0).expand(values.shape[0], -1, -1).clone() for s in sides]
            for b, (layer, sample, unit) in enumerate(sliding):
                out[layer][:, sample, unit] = values[:, b].to(out[layer])
            return out

        for _ in range(NEWTON_STEPS):
            grads = self.gradients(fw, batch(slopes.unsqueeze(0) + shifts))
            g = self.rates(fw, row, grads, sides, sliding, sliding).cpu().double()
            jacobian = (g[1:] - g[0]).t()
            change = torch.linalg.lstsq(jacobian, -g[0].unsqueeze(1), driver="gelsd").solution.squeeze(1)
            slopes = slopes + change
            if one_layer or not float(change.abs().max()) > 1e-14 * (1 + float(slopes.abs().max())):
                break
        return slopes.tolist(), self.gradients(fw, batch(slopes.unsqueeze(0)))[0]

    def slope_margin(self, slope):
        fraction = (slope - self.low) / (self.high - self.low)
        return min(fraction, 1 - fraction)

    @staticmethod
    def layer_size(fw):
        """‖v‖/√layers: a layer's norm if the layers were balanced."""
        weights = fw[0]
        return float(sum(float((w * w).sum()) for w in weights)) ** 0.5 / len(weights) ** 0.5

    def row_collapsed(self, fw, kink):
        return float(fw[0][kink[0]][kink[2]].norm()) <= COLLAPSED * self.layer_size(fw)

    def margin_scales(self, fw):
        """Per hidden layer [n, k_l]: ‖W_l[j]‖·‖a_{l−1}[i]‖. A row passing through zero, or a sample's input
        column collapsing (every unit below at its kink), flips z's sign at once: below COLLAPSED of their
        balanced size (‖v‖/√layers per layer) they stop scaling, so the margin passes zero with z."""
        weights, zs, hs, _ = fw
        layer_size = self.layer_size(fw)
        input_norms = self.ncf.inputs.norm(dim=1)
        scales = []
        for l in range(len(zs)):
            rows = weights[l].norm(dim=1).clamp(min=COLLAPSED * layer_size)
            cols = input_norms if l == 0 else torch.maximum(hs[l - 1].norm(dim=1),
                                                             COLLAPSED * layer_size ** l * input_norms)
            scales.append(cols[:, None] * rows[None, :])
        return scales

    def signed_margins(self, fw, mode):
        """Per hidden layer [n, k_l] on the CPU: z·(+1 above, −1 below)/margin_scales, inf for removed units,
        all-zero input columns, sliding kinks and the preactivations of a sample whose whole input column
        comes from sliding kinks (held at zero: z is rounding there and moves with them)."""
        weights, zs, hs, _ = fw
        held = [torch.zeros_like(side, dtype=torch.bool) for side in mode.sides]
        for layer, sample, unit in mode.sliding:
            held[layer][sample, unit] = True
        margins = []
        for l, (z, scale) in enumerate(zip(zs, self.margin_scales(fw))):
            if l > 0:
                held[l] = held[l] | held[l - 1].all(dim=1, keepdim=True)
            sign = torch.where(mode.sides[l] == self.high, torch.ones_like(z), -torch.ones_like(z))
            rows = weights[l].norm(dim=1)
            cols = self.ncf.inputs.norm(dim=1) if l == 0 else hs[l - 1].norm(dim=1)
            dead = (rows == 0)[None, :] | (cols == 0)[:, None] | held[l]
            margins.append((z * sign / scale).masked_fill(dead, math.inf).cpu().double())
        return margins

    def evaluate(self, v, mode):
        """N(v) and ∇N(v) in the mode (sliding kinks at their Filippov slopes)."""
        fw = self.forward(v, mode.sides)
        mode.slopes, gradient = self.slide(fw, v, mode.sides, mode.sliding, mode.slopes)
        return fw[3], gradient

    def initial_mode(self, row):
        ncf = self.ncf
        hidden, _ = split_model(split(row, ncf.shapes), ncf.kind)
        h, sides = ncf.inputs, []
        for w in hidden:
            z = h @ w.t()
            sides.append(torch.where(z > 0, torch.ones_like(z), torch.full_like(z, self.low)))
            h = activation(z, ncf.alpha, 1)
        mode = Mode(sides)
        margins = self.signed_margins(self.forward(row, sides), mode)
        near = [(l, i, j) for l, m in enumerate(margins) for i, j in (m.abs() <= self.tolerance).nonzero().tolist()]
        self.settle(row, mode, near)
        return mode

    def departures(self, row, mode):
        """[(kink, margin)] where row has left the mode or is within the tolerance of leaving it (margin <
        tolerance): the integrator locates the first of margin < −tolerance and settles the others."""
        fw = self.forward(row, mode.sides)
        out = []
        for l, m in enumerate(self.signed_margins(fw, mode)):
            for i, j in (m < self.tolerance).nonzero().tolist():
                out.append(((l, i, j), float(m[i, j])))
        if mode.sliding:
            slopes, _ = self.slide(fw, row, mode.sides, mode.sliding, mode.slopes)
            for kink, slope in zip(mode.sliding, slopes):
                if self.slope_margin(slope) < self.tolerance:
                    out.append((kink, self.slope_margin(slope)))
        return out

    def margins(self, row, mode, kinks):
        fw = self.forward(row, mode.sides)
        signed = self.signed_margins(fw, mode)
        # the sliding slopes cost a Newton solve: only when a sliding kink is asked for
        asked = any(kink in mode.sliding for kink in kinks)
        slopes = self.slide(fw, row, mode.sides, mode.sliding, mode.slopes)[0] if asked else []
        out = []
        for kink in kinks:
            if kink in mode.sliding:
                out.append(self.slope_margin(slopes[mode.sliding.index(kink)]))
            else:
                out.append(float(signed[kink[0]][kink[1], kink[2]]))
        return out

    def side_rate(self, fw, row, mode, kink, slope):
        """dz/ds of `kink` at `slope` (sliding kinks re-solved) as the rate of its margin per unit angle û
        moves; within the tolerance it is no push at all (a kink whose input column collapsed onto
        sliding kinks moves with them)."""
        sides = [s.clone() for s in mode.sides]
        sides[kink[0]][kink[1], kink[2]] = slope
        _, gradient = self.slide(fw, row, sides, mode.sliding, mode.slopes)
        rate = float(self.rates(fw, row, gradient.unsqueeze(0), sides, mode.sliding, [kink])[0, 0])
        speed = float((gradient - (gradient @ row) / (row @ row) * row).norm() / row.norm())
        scale = float(self.margin_scales(fw)[kink[0]][kink[1], kink[2]])
        normalized = rate / (scale * speed) if speed > 0 else 0.0
        return 0.0 if abs(normalized) <= self.tolerance else normalized

    def settle(self, row, mode, kinks):
        """The mode at a point within the tolerance of leaving it at `kinks`: each of them (sliding or not)
        takes the side the field on both sides points to, or slides when they point at each other; other
        sliding kinks whose slope left [α, 1] stop sliding. Returns (changed, crossings, entries, exits)."""
        changed, crossings, entries, exits = False, 0, 0, 0
        pending = sorted(kinks, key=lambda kink: -kink[0])  # popped lowest layer first
        released = {kink for kink in kinks if kink in mode.sliding}  # decided afresh below
        keep = [(k, s) for k, s in zip(mode.sliding, mode.slopes) if k not in released]
        mode.sliding, mode.slopes = [k for k, _ in keep], [s for _, s in keep]
        for _ in range(2 * len(kinks) + 2 * len(mode.sliding) + 8):
            fw = self.forward(row, mode.sides)
            slopes, _ = self.slide(fw, row, mode.sides, mode.sliding, mode.slopes)
            keep = [(k, s) for k, s in zip(mode.sliding, slopes) if self.slope_margin(s) >= 0]
            for (layer, sample, unit), s in zip(mode.sliding, slopes):
                if self.slope_margin(s) < 0:
                    mode.sides[layer][sample, unit] = self.high if s > self.high else self.low
                    exits += 1
            exited = len(keep) < len(mode.sliding)
            mode.sliding, mode.slopes = [k for k, _ in keep], [s for _, s in keep]
            if exited:
                changed = True
                continue
            if not pending:
                break
            kink = pending.pop()
            if kink in mode.sliding:
                continue
            below = self.side_rate(fw, row, mode, kink, self.low)
            above = self.side_rate(fw, row, mode, kink, self.high)
            layer, sample, unit = kink
            current = float(mode.sides[layer][sample, unit])
            was_sliding = kink in released
            # No push either way at a unit whose row collapsed (it dies away): z keeps the side it is on.
            # (Elsewhere no push keeps the side: a kink above sliding kinks moves with them.)
            if below == 0 and above == 0 and not was_sliding and self.row_collapsed(fw, kink):
                z = float(fw[1][layer][sample, unit])
                below = above = 1.0 if z > 0 else -1.0 if z < 0 else 0.0
            if below > 0 > above or (was_sliding and not (below > 0 and above > 0) and not (below < 0 and above < 0)):
                mode.sliding.append(kink)  # both sides push towards the kink (or it slid and nothing pushes off)
                mode.slopes.append(self.low + (self.high - self.low) * below / (below - above)
                                   if below != above else 0.5 * (self.low + self.high))
                entries += 0 if was_sliding else 1
                changed = changed or not was_sliding
                continue
            side = self.high if below > 0 and above > 0 else self.low if below < 0 and above < 0 else current
            if was_sliding:
                exits += 1
                changed = True
            elif side != current:
                crossings += 1
                changed = True
            mode.sides[layer][sample, unit] = side
        return changed, crossings, entries, exits


def departure_fraction(field, mode, inside, size, kinks, start_margins, end_margins):
    """The first fraction θ of a step at which one of `kinks` leaves the mode (its margin falls below its
    value at the start, or 0; both ends' margins given), on the step's interpolant `inside`: bisection to a
    bracket of 1/64, then regula falsi (Illinois) on the kink that leaves first; the end of the final
    bracket, just past it."""
    def at(theta):
        return field.margins(inside(theta)[:size], mode, kinks)

    # where each kink leaves: its margin crosses 0, or half a tolerance below where it began on its wrong side
    thresholds = [m - 0.5 * field.tolerance if m < 0 else 0.0 for m in start_margins]

    def first_departed(margins):
        below = [(m - t, k) for k, (m, t) in enumerate(zip(margins, thresholds)) if m - t < 0]
        return min(below)[1] if below else None

    low, high = 0.0, 1.0
    margins_low, margins_high = list(start_margins), list(end_margins)  # θ = 0 and 1: the step's ends
    while high - low > 1 / 64:
        middle = 0.5 * (low + high)
        margins = at(middle)
        if first_departed(margins) is not None:
            high, margins_high = middle, margins
        else:
            low, margins_low = middle, margins
    kink = first_departed(margins_high)
    if kink is None:
        return high
    g_low, g_high, side = margins_low[kink] - thresholds[kink], margins_high[kink] - thresholds[kink], 0
    for _ in range(60):
        if not high - low > 1e-15:
            break
        theta = (low * g_high - high * g_low) / (g_high - g_low)
        if not low < theta < high:
            theta = 0.5 * (low + high)
        margins = at(theta)
        other = first_departed(margins)
        if other is not None:
            high = theta
            if other != kink:  # another kink leaves first: follow that one
                kink, side = other, 0
                g_low = margins_low[kink] - thresholds[kink]
            g_high = margins[kink] - thresholds[kink]
            if side == -1:
                g_low *= 0.5
            side = -1
        else:
            low, margins_low = theta, margins
            g_low = margins[kink] - thresholds[kink]
            if side == 1:
                g_high *= 0.5
            side = 1
        if abs(g_high) <= 1e-3 * field.tolerance:
            break
    return high


MAX_LANDINGS = 20  # retries to land on a kink before a step that leaves its mode is taken as it is
