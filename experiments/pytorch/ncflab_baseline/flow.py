"""The NCF gradient flow du/dt = ∇N(u) from w0: Dormand–Prince 5(4), FSAL, ncflab's step control;
its blow-up time T* and direction are what the escape of gradient descent is compared with.
"""
import math
import sys

import torch

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


def crossing_time(degree, t0, r0, n0, t1, r1, n1, target):
    """t where ‖u‖ = target inside a step: cubic Hermite in t with d‖u‖/dt = L·N(u)/‖u‖."""
    h = t1 - t0
    d0, d1 = h * degree * n0 / r0, h * degree * n1 / r1

    def radius(s):
        c = 1 - s
        return (1 + 2 * s) * c * c * r0 + s * c * c * d0 + s * s * (3 - 2 * s) * r1 - s * s * c * d1

    low, high = 0.0, 1.0
    for _ in range(64):
        mid = 0.5 * (low + high)
        if radius(mid) < target:
            low = mid
        else:
            high = mid
    return t0 + high * h


class Samples:
    """u at the sample times, each interpolated inside the step that passed it: sampling never
    changes the steps the flow takes."""

    def __init__(self, times, size):
        self.times, self.next = times, 0
        self.values = torch.full((len(times), size), math.nan, dtype=torch.float64)

    def take(self, t, u, slope, t0, u0, k0, h):
        """The sample times up to t, the flow having stepped (size h) from (t0, u0, slope k0) to
        (t, u, slope); h = 0: u itself."""
        while self.next < len(self.times) and self.times[self.next] <= t:
            s = 0.0 if h == 0 else (self.times[self.next] - t0) / (t - t0)
            self.values[self.next] = (u if h == 0 else hermite(u0, k0, u, slope, h, s)).cpu()
            self.next += 1


def dormand_prince_step(ncf, u, slope, h):
    """One step of size h from u (slope ∇N(u), reused: FSAL): the new point, N and ∇N there, and
    the norm of the error estimate."""
    stages = [slope]
    for row in DP_STAGES:
        increment = row[0] * stages[0]
        for a, k in zip(row[1:], stages[1:]):
            if a != 0:
                increment = increment + a * k
        point = u + h * increment
        new_value, new_slope = ncf.value_and_gradient(point)
        stages.append(new_slope)
    error = DP_ERROR[0] * stages[0]
    for e, k in zip(DP_ERROR[1:], stages[1:]):
        if e != 0:
            error = error + e * k
    return point, new_value, new_slope, float((h * error).norm())


def integrate_flow(ncf, u0, options, sample_times):
    """The flow from u0 to blow-up (‖u‖ ≥ max_norm), collapse, max_time or max_steps.
    Returns the outcome as summary.json's ncf_flow, the final direction and u at sample_times."""
    max_norm, rtol, atol = options["max_norm"], options["rtol"], options["atol"]
    kink_step = options["kink_step"] if ncf.p == 1 else 0.0
    degree = float(ncf.total_degree)
    samples = Samples(sample_times, u0.numel())
    u = u0.clone()
    value, slope = ncf.value_and_gradient(u)
    t, norm, speed = 0.0, float(u.norm()), float(slope.norm())
    initial_norm, accepted, rejected = norm, 0, 0
    h_next = 1e-3 * norm / speed if speed > 0 else 1.0  # the controller's next step size
    previous, before = None, None

    def stop_reason():
        if norm >= max_norm:
            return "blew_up"
        if norm < 1e-3 * initial_norm or (value <= 0 and speed <= 1e-12 * norm):
            return "collapsed"
        if t >= options["max_time"]:
            return "max_time"
        if accepted + rejected >= options["max_steps"] or not h_next >= sys.float_info.min:
            return "max_steps"
        return None

    samples.take(t, u, slope, t, u, slope, 0.0)  # times at or before 0: u0 itself
    status = stop_reason()
    while status is None:
        target = options["max_time"]  # landed on exactly, not overshot
        h = min(h_next, target - t)  # this step's size
        point, new_value, new_slope, error_norm = dormand_prince_step(ncf, u, slope, h)
        new_norm, new_speed = float(point.norm()), float(new_slope.norm())
        ratio = error_norm / (atol + rtol * max(norm, new_norm))
        finite = all(math.isfinite(x) for x in (ratio, new_norm, new_value, new_speed))
        factor = 0.2 if not finite else 5.0 if ratio == 0 else min(max(0.9 * ratio ** -0.2, 0.2), 5.0)
        # p = 1: ∇N jumps across kinks; a step moving u by ≤ kink_step·‖u‖ is taken anyway.
        h_floor = kink_step * norm / speed if speed > 0 else 0.0
        if finite and (ratio <= 1 or h <= h_floor):
            previous = (t, norm, value)
            before = (u, slope, h)
            landed = h >= target - t
            t = target if landed else t + h
            u, slope, norm, value, speed = point, new_slope, new_norm, new_value, new_speed
            h_next = max(h_next, h * factor) if landed else h * factor
            if kink_step > 0 and speed > 0:
                h_next = max(h_next, kink_step * norm / speed)
            accepted += 1
            samples.take(t, u, slope, previous[0], *before)
        else:
            h_next = max(h * min(1.0, factor), h_floor)
            rejected += 1
        status = stop_reason()

    if status == "blew_up" and accepted > 0:
        t, u, norm = blowup_crossing(degree, max_norm, previous, before, (t, norm, value), u, slope)
    direction = u / u.norm()
    return flow_result(ncf, status, degree, t, norm, direction), direction, samples.values


def blowup_crossing(degree, max_norm, previous, before, last, u, slope):
    """(t, u, ‖u‖) where ‖u‖ crossed max_norm inside the last step (cubic Hermite), from the step's
    start `previous` = (t, ‖u‖, N), `before` = (u, ∇N, h) and its end `last` = (t, ‖u‖, N), u, ∇N.
    The reference direction is û there, not at the step's end: how far that overshot depends
    on the step sizes."""
    t = last[0]
    crossing = crossing_time(degree, *previous, *last, max_norm)
    u0, k0, h = before
    fraction = (crossing - previous[0]) / (t - previous[0])
    u = hermite(u0, k0, u, slope, h, fraction)
    return crossing, u, float(u.norm())


def flow_result(ncf, status, degree, t, norm, direction):
    """summary.json's ncf_flow for a flow that stopped for `status` at time t, ‖u‖ = norm."""
    result = {"status": status, "blowup_time": None, "escape_time": None, "collapsed": status == "collapsed",
              "ncf": ncf.value(direction), "residual": ncf.smooth_residual(direction)}
    if status == "blew_up":
        result["escape_time"] = t
        if degree > 2 and result["ncf"] > 0:  # SPEC §1: T* ≈ t + ‖u‖^(2−L)/((L−2)·L·N(û))
            result["blowup_time"] = t + norm ** (2 - degree) / ((degree - 2) * degree * result["ncf"])
    return result
