"""``nextchar export CKPT --onnx FILE``: the model as one ONNX graph, built node by node with ``onnx.helper``
from ONNX's own recurrent operators (RNN, LSTM, GRU), whatever the formulation (module, cell loop or
hand-written cell: the same weights, the same math). A minimal family (mingru, minlstm) has no such operator
but needs none: its gates read the input alone, so a layer is elementwise ops over the whole window giving
h_t = a_t h_{t-1} + b_t, and a ``Scan`` whose body is that one multiply-add (from h0 = 0 the first step is
b_0, the cell's first step from no state).

Inputs ``x`` (int64, (T, B) character indices), ``h0`` (and ``c0`` for the LSTM) (L, B, H); outputs
``logits`` (T, B, V), ``hn`` (and ``cn``) (L, B, H). T and B are dynamic. PyTorch's gate blocks are
reordered to ONNX's (LSTM: i f g o -> i o f c; GRU: r z n -> z r h, with ``linear_before_reset=1``, which
is PyTorch's GRU). An embedding (or, for one-hot input, the identity) is a ``Gather``.
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..cells import MIN_FAMILIES
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


class _Graph:
    """The nodes and initializers of a graph being built."""

    def __init__(self, helper, numpy_helper, opset: int) -> None:
        self.helper, self.numpy_helper, self.nodes, self.inits = helper, numpy_helper, [], []
        self.opset = opset

    def constant(self, name: str, tensor: torch.Tensor) -> str:
        self.inits.append(self.numpy_helper.from_array(tensor.detach().cpu().contiguous().numpy(), name))
        return name

    def node(self, op: str, inputs: list[str], outputs: list[str], **attributes) -> None:
        self.nodes.append(self.helper.make_node(op, inputs, outputs, **attributes))


def _layer(graph: _Graph, k: int, weights: dict, config, previous: str, states: list[str]) -> str:
    """Layer k as one ONNX recurrent node reading ``previous`` (T, B, I); returns its output (T, B, H)."""
    family, hidden = config.family, config.hidden_size
    w = _reordered(weights["weight_ih"], family, hidden).float()[None]  # (1, G*H, I)
    r = _reordered(weights["weight_hh"], family, hidden).float()[None]  # (1, G*H, H)
    biases = [weights[name] if weights[name] is not None else torch.zeros(weights["weight_ih"].shape[0])
              for name in ("bias_ih", "bias_hh")]
    b = torch.cat([_reordered(bias, family, hidden) for bias in biases]).float()[None]  # (1, 2*G*H)
    inputs = [previous, graph.constant(f"W{k}", w), graph.constant(f"R{k}", r), graph.constant(f"B{k}", b), ""]
    for s in states:  # this layer's initial state: (L, B, H)[k] -> (1, B, H)
        graph.node("Gather", [s, graph.constant(f"{s}_index{k}", torch.tensor([k]))], [f"{s}_{k}"], axis=0)
        inputs.append(f"{s}_{k}")
    attributes = {"rnn": {"activations": ["Relu" if config.nonlinearity == "relu" else "Tanh"]}, "lstm": {},
                  "gru": {"linear_before_reset": 1}}[family]
    outputs = [f"Y{k}", f"h0_out{k}"] + ([f"c0_out{k}"] if family == "lstm" else [])
    graph.node({"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}[family], inputs, outputs, hidden_size=hidden,
               **attributes)
    graph.node("Squeeze", [f"Y{k}", graph.constant(f"axis1_{k}", torch.tensor([1]))], [f"out{k}"])  # drop directions
    return f"out{k}"


def _sigmoid_blocks(graph: _Graph, k: int, pre: str, blocks: int) -> list[str]:
    """pre (T, B, blocks*H) split into its gate blocks, the first through g (the candidate h~), the rest
    through σ."""
    names = [f"pre{k}_{b}" for b in range(blocks)]
    split = {"num_outputs": blocks} if graph.opset >= 18 else {}  # equal blocks: implied before opset 18
    graph.node("Split", [pre], names, axis=2, **split)
    candidate, zero, half = names[0], graph.constant(f"zero{k}", torch.zeros(())), graph.constant(f"half{k}",
                                                                                                torch.tensor(0.5))
    graph.node("GreaterOrEqual", [candidate, zero], [f"nonneg{k}"])
    graph.node("Add", [candidate, half], [f"shifted{k}"])
    graph.node("Sigmoid", [candidate], [f"squashed{k}"])
    graph.node("Where", [f"nonneg{k}", f"shifted{k}", f"squashed{k}"], [f"h_tilde{k}"])
    for name in names[1:]:
        graph.node("Sigmoid", [name], [f"{name}_sigma"])
    return [f"h_tilde{k}"] + [f"{name}_sigma" for name in names[1:]]


def _minimal_layer(graph: _Graph, k: int, weights: dict, config, previous: str, states: list[str]) -> str:
    """Layer k of a minimal family: the window's coefficients a (1 - z; f') and b (z h~; i' h~) at once, then
    a Scan of h' = a h + b from the layer's h0; returns its output (T, B, H)."""
    from onnx import TensorProto, helper

    w_t = graph.constant(f"W{k}", weights["weight_ih"].float().T.contiguous())  # (I, G*H)
    bias = weights["bias_ih"] if weights["bias_ih"] is not None else torch.zeros(weights["weight_ih"].shape[0])
    graph.node("MatMul", [previous, w_t], [f"gi{k}"])
    graph.node("Add", [f"gi{k}", graph.constant(f"B{k}", bias.float())], [f"pre{k}"])
    if config.family == "mingru":
        h_tilde, z = _sigmoid_blocks(graph, k, f"pre{k}", 2)
        graph.node("Sub", [graph.constant(f"one{k}", torch.ones(())), z], [f"a{k}"])
        graph.node("Mul", [z, h_tilde], [f"b{k}"])
    else:
        h_tilde, f, i = _sigmoid_blocks(graph, k, f"pre{k}", 3)
        graph.node("Add", [f, i], [f"f_plus_i{k}"])
        graph.node("Div", [f, f"f_plus_i{k}"], [f"a{k}"])
        graph.node("Div", [i, f"f_plus_i{k}"], [f"i_norm{k}"])
        graph.node("Mul", [f"i_norm{k}", h_tilde], [f"b{k}"])
    h0 = states[0]
    graph.node("Gather", [h0, graph.constant(f"{h0}_index{k}", torch.tensor(k))], [f"{h0}_{k}"], axis=0)  # (B, H)
    step = [helper.make_tensor_value_info(name, TensorProto.FLOAT, ["B", config.hidden_size])
            for name in ("h", "a_t", "b_t")]
    body = helper.make_graph([helper.make_node("Mul", ["a_t", "h"], ["a_h"]),
                              helper.make_node("Add", ["a_h", "b_t"], ["h_next"]),
                              helper.make_node("Identity", ["h_next"], ["h_out"])],
                             f"step{k}", step,
                             [helper.make_tensor_value_info(name, TensorProto.FLOAT, ["B", config.hidden_size])
                              for name in ("h_next", "h_out")])
    graph.node("Scan", [f"{h0}_{k}", f"a{k}", f"b{k}"], [f"h_last{k}", f"out{k}"], body=body, num_scan_inputs=2)
    graph.node("Unsqueeze", [f"h_last{k}", graph.constant(f"axis0_{k}", torch.tensor([0]))], [f"{h0}_out{k}"])
    return f"out{k}"


def check_opset(opset: int) -> None:
    """Only the opsets the installed onnx knows (and this graph's operators need): a newer number would write
    a model that no runtime loads."""
    newest = require_onnx().defs.onnx_opset_version()
    if opset < MIN_OPSET:
        raise ValueError(f"export: --opset {opset} is too old; expected {MIN_OPSET} or newer")
    if opset > newest:
        raise ValueError(f"export: --opset {opset} is newer than the installed onnx supports; expected "
                         f"{MIN_OPSET}..{newest}")


def build_onnx(model: CharModel, opset: int = DEFAULT_OPSET):
    """The ``onnx.ModelProto`` of ``model`` (checked with ``onnx.checker``)."""
    onnx = require_onnx()
    from onnx import TensorProto, helper, numpy_helper

    check_opset(opset)
    config = model.config
    graph = _Graph(helper, numpy_helper, opset)
    table = model.embedding.weight if model.embedding is not None else torch.eye(config.vocab_size)
    graph.node("Gather", [graph.constant("input_table", table.float()), "x"], ["features"], axis=0)
    states = ["h0", "c0"] if config.family == "lstm" else ["h0"]
    previous = "features"
    with torch.no_grad():
        for k, weights in enumerate(model.layer_weights()):
            layer = _minimal_layer if config.family in MIN_FAMILIES else _layer
            previous = layer(graph, k, weights, config, previous, states)
        head_t = graph.constant("head_weight_t", model.head.weight.float().T.contiguous())  # (H, V)
        head_b = graph.constant("head_bias", model.head.bias.float())
    graph.node("MatMul", [previous, head_t], ["scores"])
    graph.node("Add", ["scores", head_b], ["logits"])
    out_names = {"h0": "hn", "c0": "cn"}
    for s in states:
        graph.node("Concat", [f"{s}_out{k}" for k in range(config.num_layers)], [out_names[s]], axis=0)
    state_shape = [config.num_layers, "B", config.hidden_size]
    proto = helper.make_model(helper.make_graph(
        graph.nodes, f"nextchar_{config.family}",
        [helper.make_tensor_value_info("x", TensorProto.INT64, ["T", "B"])]
        + [helper.make_tensor_value_info(s, TensorProto.FLOAT, state_shape) for s in states],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["T", "B", config.vocab_size])]
        + [helper.make_tensor_value_info(out_names[s], TensorProto.FLOAT, state_shape) for s in states],
        initializer=graph.inits), opset_imports=[helper.make_opsetid("", opset)], producer_name="nextchar")
    proto.ir_version = min(proto.ir_version, 8)  # runtimes of the opset's age read IR 8
    onnx.checker.check_model(proto)
    return proto


def export_onnx(model: CharModel, path: str | Path, opset: int = DEFAULT_OPSET) -> Path:
    """Write ``model`` as ONNX to ``path`` atomically."""
    from ..outputs import write_bytes_atomic

    return write_bytes_atomic(path, build_onnx(model, opset).SerializeToString())
