"""The network and the loss: σ, the forward pass H(X), the losses, the layers' shapes and degrees;
plain PyTorch functions on one weight tensor per layer, shared by training, the NCF and its flow.
"""
import torch
import torch.nn.functional as F


def activation(z, alpha, p):
    """Polynomial Leaky ReLU σ(z) = max(z,0)^p − α·max(−z,0)^p (p = 1: Leaky ReLU)."""
    if p == 1:
        return F.leaky_relu(z, alpha)
    return torch.clamp(z, min=0) ** p - alpha * torch.clamp(-z, min=0) ** p


def split_model(weights, kind):
    """The layers followed by σ, and the output row W_K (None for single_layer: H sums the units)."""
    return (weights, None) if kind == "single_layer" else (weights[:-1], weights[-1])


def output(h, out):
    """H from the last hidden activations h [n, k]: W_K h, or Σ_j h_j without output weights."""
    return h.sum(1) if out is None else (h @ out.t()).squeeze(1)


def forward(weights, x, alpha, p, kind):
    """H(X) for weights [W1, ..., WK] (W1 alone for single_layer), Wl of shape [k_l, k_{l−1}];
    returns [n]."""
    hidden, out = split_model(weights, kind)
    h = x
    for w in hidden:
        h = activation(h @ w.t(), alpha, p)
    return output(h, out)


def loss_value(outputs, labels, kind):
    if kind == "square":
        return 0.5 * ((outputs - labels) ** 2).sum()
    return F.softplus(-labels * outputs).sum()


def layer_degrees(widths, p, kind):
    """q_l = p^(K−l): W1 enters H with degree p^(K−1), WK with 1; single_layer: [p] (L = p)."""
    if kind == "single_layer":
        return [p]
    depth = len(widths) + 1
    return [p ** (depth - 1 - l) for l in range(depth)]


def layer_shapes(d, widths, kind):
    """[k_l, k_{l−1}] of W1, ..., WK (no output row for single_layer)."""
    dims = [d, *widths] + ([] if kind == "single_layer" else [1])
    return [(dims[l + 1], dims[l]) for l in range(len(dims) - 1)]


def split(flat, shapes):
    out, offset = [], 0
    for rows, cols in shapes:
        out.append(flat[offset:offset + rows * cols].view(rows, cols))
        offset += rows * cols
    return out


def flatten(weights):
    return torch.cat([w.reshape(-1) for w in weights])
