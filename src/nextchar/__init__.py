"""nextchar: next-character prediction with recurrent networks, from the exam to any text.

>>> from nextchar import run_problem
>>> result = run_problem(2)           # the exam's problem 2, by its exact protocol
>>> result.fit.probs[:10]             # the fitted values the exam prints
"""
from .cells import (
    ALL_FAMILIES,
    FAMILIES,
    MIN_FAMILIES,
    LSTMState,
    ScratchCell,
    State,
    TwoLinearCell,
    cell_step,
    gru_step,
    lstm_step,
    mingru_step,
    minlstm_step,
    rnn_step,
)
from .config import FORMULATIONS, ModelConfig, parse_formulation
from .exam.problems import PROBLEMS, run_exam, run_problem
from .exam.verify import verify, verify_family
from .inspect.influence import Influence, influence, states_of
from .inspect.inspection import InspectOptions, inspect_text
from .inspect.trace import LayerTrace, Trace, trace
from .model import CharModel, copy_weights
from .plots import loss_curves, probability_heatmap
from .sequence.data import EXAM_MAPPING, EXAM_TEXT, exam_data
from .sequence.fitting import FitResult, fit
from .sequence.many import fit_many
from .step import NonFiniteLossError
from .vocab import Vocab, next_char_pairs

__version__ = "0.1.0"

__all__ = [
    "FAMILIES", "FORMULATIONS", "PROBLEMS", "EXAM_MAPPING", "EXAM_TEXT", "CharModel", "FitResult", "LSTMState",
    "ModelConfig", "NonFiniteLossError", "ScratchCell", "State", "TwoLinearCell", "Vocab", "cell_step",
    "copy_weights", "exam_data", "fit", "fit_many", "gru_step", "loss_curves", "lstm_step", "next_char_pairs",
    "parse_formulation", "probability_heatmap", "rnn_step", "run_exam", "run_problem", "verify", "verify_family",
    "LayerTrace", "Trace", "trace", "Influence", "influence", "states_of", "InspectOptions", "inspect_text",
    "ALL_FAMILIES", "MIN_FAMILIES", "mingru_step", "minlstm_step",
]
