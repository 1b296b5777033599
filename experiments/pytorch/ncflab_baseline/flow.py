"""The NCF gradient flow du/dt = ∇N(u) from w0 in SPEC §1's blow-up-free variables (û, ln‖u‖, t):
Dormand–Prince 5(4), FSAL, ncflab's step control; its blow-up time T* and direction are what the
escape of gradient descent is compared with.
"""
import math
import sys

import torch

from .flow_kinks import MAX_LANDINGS, KinkedField, departure_fraction

MAX_FLOW_SAMPLES = 4096  # as ncflab: u(δ^(L−2)·t) is kept for at most this many logged steps

DP_STAGES = [
    [1 / 5],
    [3 / 40, 9 / 40],
    [44 / 45, -56 / 15, 32 / 9],
    [19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729],
    [9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656],
    [35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84],
]
DP_ERROR = [71 / 57600, 0.0, -71 / 16695, 71 / 1920, -17253 / 339200, 22 / 525, -1 / 40]


def hermite(u0, k0, u1, k1, h, s):
    """u at fraction s of a step of length h from u0 (slope k0) to u1 (slope k1): cubic Hermite."""
    c = 1 - s
    return (1 + 2 * s) * c * c * u0 + s * c * c * h * k0 + s * s * (3 - 2 * s) * u1 - s * s * c * h * k1


def fraction_reaching(y0, k0, y1, k1, h, target):
    """The θ ∈ [0, 1] at which the cubic Hermite interpolant of a scalar reaches `target`
    (between y0 and y1), by bisection."""
    rising = y1 >= y0
    low, high = 0.0, 1.0
    for _ in range(64):
        mid = 0.5 * (low + high)
        if (hermite(y0, k0, y1, k1, h, mid) < target) == rising:
            low = mid
        else:
            high = mid
    return high


GAUSS_NODES = [0.019855071751231912, 0.10166676129318664, 0.2372337950418355, 0.4082826787521751,
               0.5917173212478248, 0.7627662049581645, 0.8983332387068134, 0.9801449282487681]
GAUSS_WEIGHTS = [0.050614268145188344, 0.11119051722668717, 0.15685332293894352, 0.18134189168918088,
                 0.18134189168918088, 0.15685332293894352, 0.11119051722668717, 0.050614268145188344]


def time_in_step(degree, rho_step, tau_end, h, theta):
    """τ at fraction θ of a step: τ_end·Q(θ)/Q(1), Q(θ) = ∫_0^θ e^(−(L−2)(ρ(σ)−ρ_0)) dσ by Gauss–Legendre
    on ρ's cubic Hermite interpolant (τ' varies by e^((L−2)Δρ) inside a step; ρ is nearly linear)."""
    def weight(theta):
        return theta * sum(w * math.exp(-(degree - 2) * (hermite(*rho_step, h, theta * x) - rho_step[0]))
                           for x, w in zip(GAUSS_NODES, GAUSS_WEIGHTS))
    return tau_end if theta >= 1 else tau_end * weight(theta) / weight(1.0)


def fraction_at_time(degree, rho_step, tau_end, h, target):
    low, high = 0.0, 1.0
    for _ in range(64):
        mid = 0.5 * (low + high)
        if time_in_step(degree, rho_step, tau_end, h, mid) < target:
            low = mid
        else:
            high = mid
    return high


class Flow:
    """The flow in SPEC §1's blow-up-free variables y = [v, ρ, τ] in the time s (ds = ‖u‖^(L−2) dt):
    v ∥ û, ρ = ln‖u‖, τ = t − t at the start of the step (t itself is summed compensated)."""

    def __init__(self, ncf, size, field=None, mode=None):
        self.ncf, self.degree, self.size = ncf, float(ncf.total_degree), size
        self.field, self.mode = field, mode  # nets with kinks: ∇N of the mode (flow_kinks.py)

    def derivative(self, y):
        """dy/ds and (N(û), ‖∇N(û)‖, ‖tangent part of ∇N(û)‖)."""
        degree, size = self.degree, self.size
        v, rho = y[:size], y[size]
        if self.field is None:
            value, gradient = self.ncf.value_and_gradient(v)
        else:
            value, gradient = self.field.evaluate(v, self.mode)
        norm = float(v.norm())
        tangent = gradient - (degree * value / norm ** 2) * v
        unit_value = value / norm ** degree
        slope = torch.cat([tangent * norm ** (2 - degree),
                           torch.tensor([degree * unit_value, math.exp(-(degree - 2) * float(rho))],
                                        dtype=y.dtype, device=y.device)])
        unit_scale = norm ** (1 - degree)
        return slope, (unit_value, float(gradient.norm()) * unit_scale, float(tangent.norm()) * unit_scale)

    def step(self, y, slope, h):
        """One Dormand–Prince step of size h from y (slope reused: FSAL): the new point, its slope,
        its statistics and the error estimate h·Σ e_j k_j."""
        stages = [slope]
        for row in DP_STAGES:
            increment = row[0] * stages[0]
            for a, k in zip(row[1:], stages[1:]):
                if a != 0:
                    increment = increment + a * k
            point = y + h * increment
            new_slope, statistics = self.derivative(point)
            stages.append(new_slope)
        error = DP_ERROR[0] * stages[0]
        for e, k in zip(DP_ERROR[1:], stages[1:]):
            if e != 0:
                error = error + e * k
        return point, new_slope, statistics, h * error


class CompensatedSum:
    """t as an unevaluated sum high + low (Neumaier), as ncflab keeps it."""

    def __init__(self):
        self.high, self.low = 0.0, 0.0

    def add(self, x):
        total = self.high + x
        self.low += (self.high - total) + x if abs(self.high) >= abs(x) else (x - total) + self.high
        self.high = total

    def value(self):
        return self.high + self.low


def ray_norm(degree, time, log_norm, value, at):
    """‖u‖ at flow time `at` on the KKT ray through (time, e^log_norm) with N(û) = value; NaN past T*."""
    if degree <= 2:
        return math.exp(log_norm + degree * value * (at - time))
    power = math.exp(-(degree - 2) * log_norm) - (degree - 2) * degree * value * (at - time)
    return power ** (-1 / (degree - 2)) if power > 0 else math.nan


def ray_time(degree, time, log_norm, value, log_target):
    """The flow time at which ‖u‖ = e^log_target on that ray."""
    rise = log_target - log_norm
    if degree <= 2:
        return time + rise / (degree * value)
    return time + remaining_time(degree, log_norm, value) * -math.expm1(-(degree - 2) * rise)


def remaining_time(degree, log_norm, value):
    """The rest of t's integral past ‖u‖ = e^log_norm on a KKT ray: ‖u‖^(2−L)/((L−2)·L·N(û))."""
    if not degree > 2 or not value > 0:
        return math.inf
    return math.exp(-(degree - 2) * log_norm) / ((degree - 2) * degree * value)




def integrate_flow(ncf, u0, options, sample_times):
    """The flow from u0 until its direction converges (blew_up, collapsed or stalled by the sign of N
    there), max_time or max_steps, as ncflab integrates it. Returns the outcome as summary.json's
    ncf_flow, the final direction and u at sample_times."""
    rtol, stall_tol = options["rtol"], options["stall_tol"]
    direction_tol = max(options["direction_tol"], 10 * rtol)  # û jitters at ~rtol once steps are stiff
    max_time = options["max_time"] if options["max_time"] > 0 else math.inf
    log_max_norm = math.log(options["max_norm"]) if options["max_norm"] > 0 else math.inf
    size = u0.numel()
    norm0 = float(u0.norm())
    field = mode = None
    if ncf.p == 1 and ncf.alpha != 1:  # kinks: the flow carries a mode (flow_kinks.py)
        field = KinkedField(ncf, max(100 * rtol, 1e-14))
        mode = field.initial_mode(u0 / norm0)
    flow = Flow(ncf, size, field, mode)
    degree = flow.degree
    kinks = {"crossings": 0, "entries": 0, "exits": 0, "sliding": 0, "unlocated": 0}
    landings, resume_step, landing_targets = 0, 0.0, []
    samples = torch.full((len(sample_times), size), math.nan, dtype=torch.float64)
    next_sample = 0
    while next_sample < len(sample_times) and sample_times[next_sample] <= 0:
        samples[next_sample] = u0.cpu()
        next_sample += 1
    y = torch.cat([u0 / norm0, torch.tensor([math.log(norm0), 0.0], dtype=u0.dtype, device=u0.device)])
    slope, (value, gradient, tangent) = flow.derivative(y)
    largest = gradient
    time, log_norm = CompensatedSum(), math.log(norm0)
    accepted, rejected = 0, 0
    escape_time = 0.0 if log_norm >= log_max_norm else None
    h_next = 1e-3 / (degree * gradient) if gradient > 0 else 1.0

    def converged():
        """The direction stands still: the KKT residual of the field (of the mode, with kinks)."""
        return tangent <= direction_tol * gradient

    def stop_reason(direction_converged):
        if time.value() >= max_time:
            return "max_time"
        if not gradient > stall_tol * largest:
            return "stalled"
        if direction_converged:
            if value < 0:
                return "collapsed"
            escaped = escape_time is not None or not options["max_norm"] > 0
            tail = remaining_time(degree, log_norm, value)
            if escaped and (degree <= 2 or tail <= 2.0 ** -53 * time.value()):
                return "blew_up"
        if accepted + rejected >= options["max_steps"] or not h_next >= sys.float_info.min \
                or not math.isfinite(log_norm):
            return "max_steps"
        return None

    status = stop_reason(converged())
    while status is None:
        h = h_next
        start_time = time.value()
        point, new_slope, (new_value, new_gradient, new_tangent), error = flow.step(y, slope, h)
        tau = float(point[size + 1])
        ratio = max(float(error[:size].norm() / point[:size].norm()) / rtol, abs(float(error[size])) / rtol,
                    abs(float(error[size + 1])) / (rtol * (start_time + tau)))
        numbers = (ratio, float(point[size]), tau, new_value, new_gradient, new_tangent,
                   float(new_slope[size]), float(new_slope[size + 1]))
        finite = all(math.isfinite(x) for x in numbers)
        factor = 0.2 if not finite else 5.0 if ratio == 0 else min(max(0.9 * ratio ** -0.2, 0.2), 5.0)
        forced = landings > MAX_LANDINGS  # retried too often to land on a kink: take it as it is
        if not (finite and ratio <= 1):
            h_next = h * min(1.0, factor)
            rejected += 1
            status = stop_reason(False)
            continue
        departures = []
        if field is not None:  # a step that left its mode beyond the tolerance lands on the kink
            departures = field.departures(point[:size], mode)
            tolerance = field.tolerance
            beyond = [(kink, margin) for kink, margin in departures if margin < -tolerance]
            if beyond:  # one that began on its wrong side (nothing pushed it) left once a tolerance further
                start_margins = field.margins(y[:size], mode, [kink for kink, _ in beyond])
                beyond = [(kink, start_margin, margin) for (kink, margin), start_margin in zip(beyond, start_margins)
                          if margin < min(start_margin, 0.0) - tolerance]
            if beyond and not forced:
                def inside_trial(theta):
                    return hermite(y, slope, point, new_slope, h, theta)
                if landings == 0:
                    resume_step = h
                landing_targets = [kink for kink, _, _ in beyond]
                h_next = h * departure_fraction(field, mode, inside_trial, size, *zip(*beyond))
                landings += 1
                rejected += 1
                status = stop_reason(False)
                continue
            if forced:
                kinks["unlocated"] += 1
        start, start_slope = y, slope
        rho_step = (float(y[size]), float(slope[size]), float(point[size]), float(new_slope[size]))
        time.add(tau)
        y, slope = point.clone(), new_slope
        y[size + 1] = 0.0
        log_norm, value, gradient, tangent = float(point[size]), new_value, new_gradient, new_tangent
        largest = max(largest, gradient)
        h_next = h * factor
        if landings > 0:  # landed on a kink: resume with the step size that passed before
            h_next = max(h_next, resume_step)
        landings = 0
        accepted += 1
        if escape_time is None and log_norm >= log_max_norm:
            escape_time = start_time + time_in_step(degree, rho_step, tau, h,
                                                    fraction_reaching(*rho_step, h, log_max_norm))

        def inside(theta):
            return hermite(start, start_slope, point, new_slope, h, theta)

        end = min(time.value(), max_time)
        while next_sample < len(sample_times) and sample_times[next_sample] <= end:
            row = inside(fraction_at_time(degree, rho_step, tau, h, sample_times[next_sample] - start_time))
            samples[next_sample] = (row[:size] / row[:size].norm() * math.exp(float(row[size]))).cpu()
            next_sample += 1
        if time.value() >= max_time:  # back to the point of the step where t = max_time
            y = inside(fraction_at_time(degree, rho_step, tau, h, max_time - start_time))
            y[size + 1] = 0.0
            slope, (value, gradient, tangent) = flow.derivative(y)
            log_norm = float(y[size])
            time.high, time.low = max_time, 0.0
            if field is not None:
                departures = field.departures(y[:size], mode)
        # Settled: kinks on the wrong side within the tolerance, and those the step just landed on (which
        # may lie a rounding short of theirs, or further on the wrong side).
        settling = [kink for kink, margin in departures
                    if -field.tolerance <= margin < 0 or kink in landing_targets]
        landing_targets = []
        if settling:
            changed, crossed, entered, exited = field.settle(y[:size], mode, settling)
            kinks["crossings"] += crossed
            kinks["entries"] += entered
            kinks["exits"] += exited
            if changed:
                slope, (value, gradient, tangent) = flow.derivative(y)
                largest = max(largest, gradient)
        status = stop_reason(converged())

    direction = y[:size] / y[:size].norm()
    if status == "blew_up":  # the escape and the samples past the last step, on the KKT ray
        if escape_time is None and math.isfinite(log_max_norm):
            escape_time = ray_time(degree, time.value(), log_norm, value, log_max_norm)
        while next_sample < len(sample_times):
            norm = ray_norm(degree, time.value(), log_norm, value, sample_times[next_sample])
            if not math.isfinite(norm):
                break
            samples[next_sample] = (norm * direction).cpu()
            next_sample += 1
    result = {"outcome": status, "blowup_time": None, "escape_time": escape_time,
              "ncf": value, "residual": tangent / gradient if gradient > 0 else 0.0}
    if status == "blew_up" and degree > 2:
        result["blowup_time"] = time.value() + remaining_time(degree, log_norm, value)
    if field is not None:
        kinks["sliding"] = len(mode.sliding)
        result["kinks"] = kinks
    if status == "stalled":
        result["norm"] = math.exp(log_norm)
        result["gradient_ratio"] = gradient / largest if largest > 0 else 0.0
    return result, direction, samples
