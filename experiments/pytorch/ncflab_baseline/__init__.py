"""The PyTorch baseline's parts, one concern a module (config, data, model, kkt, flow, train, output,
run); split so each reads on its own. The entry point is experiments/pytorch/baseline.py.
"""
