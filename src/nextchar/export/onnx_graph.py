"""``nextchar export CKPT --onnx FILE``: the model as one ONNX graph, built node by node with ``onnx.helper``
from ONNX's own recurrent operators (RNN, LSTM, GRU), whatever the formulation (module, cell loop or
hand-written cell: the same weights, the same math).

Inputs ``x`` (int64, (T, B) character indices), ``h0`` (and ``c0`` for the LSTM) (L, B, H); outputs
``logits`` (T, B, V), ``hn`` (and ``cn``) (L, B, H). T and B are dynamic. PyTorch's gate blocks are
reordered to ONNX's (LSTM: i f g o -> i o f c; GRU: r z n -> z r h, with ``linear_before_reset=1``, which
is PyTorch's GRU). An embedding (or, for one-hot input, the identity) is a ``Gather``.
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..model import CharModel

DEFAULT_OPSET = 17
"""Opset 17 (ONNX 1.12, 2022): every runtime of the last years reads it; the recurrent ops are those of 14."""
MIN_OPSET = 14
ONNX_GATE_ORDER = {"rnn": [0], "lstm": [0, 3, 1, 2], "gru": [1, 0, 2]}
"""For each ONNX gate block, the PyTorch block it takes (LSTM: i o f c from i f g o; GRU: z r h from r z n)."""


def require_onnx():
    try:
        import onnx
    except ImportError:
        raise ValueError("export: --onnx needs the onnx package; install the extra: pip install 'nextchar[onnx]'") \
            from None
    return onnx


def _reordered(weight: torch.Tensor, family: str, hidden: int) -> torch.Tensor:
    blocks = weight.reshape(len(ONNX_GATE_ORDER[family]), hidden, *weight.shape[1:])
    return torch.cat([blocks[i] for i in ONNX_GATE_ORDER[family]])


def build_onnx(model: CharModel, opset: int = DEFAULT_OPSET):
    """The ``onnx.ModelProto`` of ``model`` (checked with ``onnx.checker``)."""
    onnx = require_onnx()
    from onnx import TensorProto, helper, numpy_helper

    if opset < MIN_OPSET:
        raise ValueError(f"export: --opset {opset} is too old; expected {MIN_OPSET} or newer")
    config = model.config
    family, hidden, layers = config.family, config.hidden_size, config.num_layers
    inits, nodes = [], []

    def constant(name: str, tensor: torch.Tensor):
        inits.append(numpy_helper.from_array(tensor.detach().cpu().contiguous().numpy(), name))
        return name

    table = model.embedding.weight if model.embedding is not None else torch.eye(config.vocab_size)
    nodes.append(helper.make_node("Gather", [constant("input_table", table.float()), "x"], ["features"], axis=0))
    axis1 = constant("axis1", torch.tensor([1], dtype=torch.int64))
    operator = {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}[family]
    extra = {"rnn": {"activations": ["Relu" if config.nonlinearity == "relu" else "Tanh"]}, "lstm": {},
             "gru": {"linear_before_reset": 1}}[family]
    states = ["h0", "c0"] if family == "lstm" else ["h0"]
    previous, finals = "features", {s: [] for s in states}
    with torch.no_grad():
        for k, weights in enumerate(model.layer_weights()):
            w = _reordered(weights["weight_ih"], family, hidden).float()[None]  # (1, G*H, I)
            r = _reordered(weights["weight_hh"], family, hidden).float()[None]  # (1, G*H, H)
            biases = [weights[name] if weights[name] is not None else torch.zeros(weights["weight_ih"].shape[0])
                      for name in ("bias_ih", "bias_hh")]
            b = torch.cat([_reordered(bias, family, hidden) for bias in biases]).float()[None]  # (1, 2*G*H)
            inputs = [previous, constant(f"W{k}", w), constant(f"R{k}", r), constant(f"B{k}", b), ""]
            for s in states:  # this layer's initial state: (L, B, H)[k] -> (1, B, H)
                index = constant(f"{s}_index{k}", torch.tensor([k], dtype=torch.int64))
                nodes.append(helper.make_node("Gather", [s, index], [f"{s}_{k}"], axis=0))
                inputs.append(f"{s}_{k}")
            outputs = [f"Y{k}", f"Yh{k}"] + ([f"Yc{k}"] if family == "lstm" else [])
            nodes.append(helper.make_node(operator, inputs, outputs, hidden_size=hidden, **extra))
            nodes.append(helper.make_node("Squeeze", [f"Y{k}", axis1], [f"out{k}"]))  # (T, 1, B, H) -> (T, B, H)
            finals["h0"].append(f"Yh{k}")
            if family == "lstm":
                finals["c0"].append(f"Yc{k}")
            previous = f"out{k}"
        head_t = constant("head_weight_t", model.head.weight.float().T.contiguous())  # (H, V)
        head_b = constant("head_bias", model.head.bias.float())
    nodes.append(helper.make_node("MatMul", [previous, head_t], ["scores"]))
    nodes.append(helper.make_node("Add", ["scores", head_b], ["logits"]))
    out_names = {"h0": "hn", "c0": "cn"}
    for s in states:
        nodes.append(helper.make_node("Concat", finals[s], [out_names[s]], axis=0))
    state_shape = [layers, "B", hidden]
    graph = helper.make_graph(
        nodes, f"nextchar_{family}",
        [helper.make_tensor_value_info("x", TensorProto.INT64, ["T", "B"])]
        + [helper.make_tensor_value_info(s, TensorProto.FLOAT, state_shape) for s in states],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["T", "B", config.vocab_size])]
        + [helper.make_tensor_value_info(out_names[s], TensorProto.FLOAT, state_shape) for s in states],
        initializer=inits)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="nextchar")
    proto.ir_version = min(proto.ir_version, 8)  # runtimes of the opset's age read IR 8
    onnx.checker.check_model(proto)
    return proto


def export_onnx(model: CharModel, path: str | Path, opset: int = DEFAULT_OPSET) -> Path:
    """Write ``model`` as ONNX to ``path`` atomically."""
    from ..outputs import write_bytes_atomic

    return write_bytes_atomic(path, build_onnx(model, opset).SerializeToString())
