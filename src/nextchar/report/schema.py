"""The fields of each input kind that the page reads, with their types: an input is checked against its
kind's schema before any section is built, so a missing or mistyped field is a one-line error naming the
file and the field (``problems.1.probs_head``), never a KeyError from inside a template.

A schema is a type name (``number``, ``integer``, ``string``, ``boolean``, ``any``), a list holding the
schema of every item, or a dict of field -> schema; the key ``*`` stands for every key of a dict. A field
named ``name?`` may be absent (it is then set to None), a schema wrapped in :func:`nullable` may be null.
"""
from __future__ import annotations

import math
from typing import Any

NUM, INT, STR, BOOL, ANY = "number", "integer", "string", "boolean", "any"


class Nullable:
    def __init__(self, schema: Any) -> None:
        self.schema = schema


def nullable(schema: Any) -> Nullable:
    return Nullable(schema)


TABLE = [[NUM]]
SCHEMAS: dict[str, dict] = {
    "exam": {"problems": {"*": {"probs_head": TABLE, "final_loss": NUM, "seed": INT, "formulation": STR,
                                "engine?": STR, "inside?": nullable({"h": TABLE, "c?": nullable(TABLE)})}},
             "checks": {"*": {"seeds": [INT], "max_abs_diff": NUM, "bit_equal": BOOL, "tables_identical": BOOL}},
             "command?": STR},
    "verify": {"families": [{"family": STR, "passed": BOOL, "diffs": {"*": {"logits": NUM, "grads": NUM,
                                                                            "probs": NUM}}}],
               "epochs?": INT, "seed?": INT, "command?": STR},
    "claims": {"claims": {"*": {"statement": STR, "verdict": BOOL, "explanation": STR, "evidence?": {"*": ANY},
                                "figures?": {"*": STR}}},
               "command?": STR},
    "sweep": {"runs": [{"model": STR, "hidden_size": INT, "lr": NUM, "accuracy": nullable(NUM),
                        "final_loss": nullable(NUM), "diverged_at_epoch?": nullable(INT)}],
              "summary": [{"model": STR, "hidden_size": INT, "lr": NUM, "seeds": INT, "diverged?": INT,
                           "loss_quantiles": nullable({"0.05": NUM, "0.95": NUM, "*": NUM}),
                           "loss_median": nullable(NUM), "accuracy_mean": nullable(NUM),
                           "solved_fraction": nullable(NUM),
                           "table_spread?": {"median": TABLE, "reference_seed": INT, "reference_in_sweep": BOOL,
                                             "reference_outside_5_95?": INT, "*": ANY}}],
              "engine?": STR, "command?": STR},
    "bench": {"records": [{"workload": STR, "family": STR, "engine": STR, "hidden_size": INT, "ms_per_epoch": NUM,
                           "speedup_vs_module": NUM, "us_per_model_epoch?": NUM}],
              "compile?": nullable({"cold_s": NUM, "warm_cache_s": NUM}), "threads?": ANY, "command?": STR},
    "inspect": {"text": STR, "vocab": [STR], "family": STR, "num_layers": INT, "hidden_size": INT, "probs": TABLE,
                "layers": [{"h": TABLE, "c?": nullable(TABLE), "gates": {"*": TABLE}}],
                "units": [{"layer": INT, "unit": INT, "feature": STR, "correlation": NUM}],
                "saturation": [{"layer": INT, "gate": STR, "unit": INT, "left": NUM, "right": NUM}],
                "influence": {"position": INT, "by_distance": [NUM], "mean_by_distance": [NUM], "target?": STR,
                              "context?": STR, "positions?": INT},
                "start?": INT, "length?": INT, "window?": nullable({"offset": INT, "rows": INT}),
                "strips?": nullable([{"layer": INT, "unit": INT, "feature": nullable(STR),
                                      "correlation": nullable(NUM)}]),
                "exam_period?": nullable({"start": INT, "layers": [{"h": TABLE, "c?": nullable(TABLE), "*": ANY}]}),
                "checkpoint?": nullable(STR), "command?": nullable(STR), "*": ANY},
    "tune": {"study": STR, "storage": STR, "direction": STR, "metric": STR,
             "trials": [{"number": INT, "state": STR, "params": nullable({"*": ANY}), "value": nullable(NUM),
                         "steps": nullable(INT), "seconds": nullable(NUM), "folder": nullable(STR), "*": ANY}],
             "best": nullable({"number": INT, "value": NUM, "command": STR, "*": ANY}), "command?": nullable(STR),
             "*": ANY},
}


HISTORY = {"evals": [{"step": INT, "train_loss": NUM, "val_loss?": nullable(NUM), "val_accuracy?": nullable(NUM),
                      "*": ANY}],
           "step_losses": [NUM]}
"""A run folder's history.json, as the page reads it."""


class SchemaError(ValueError):
    """Where (a dotted field path) and what was expected."""

    def __init__(self, where: str, expected: str, got: Any) -> None:
        shown = repr(got)
        super().__init__(f"field {where or '(top)'}: expected {expected}, got {shown[:60]}"
                         f"{'...' if len(shown) > 60 else ''}")


def _is(kind: str, value: Any) -> bool:
    if kind == ANY:
        return True
    if kind == BOOL:
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if kind == INT:
        return isinstance(value, int)
    if kind == NUM:
        return isinstance(value, (int, float)) and not (isinstance(value, float) and math.isnan(value))
    return isinstance(value, str)


def conform(value: Any, schema: Any, where: str = "") -> Any:
    """``value`` checked against ``schema`` (raises :class:`SchemaError`), with absent optional fields set to None."""
    if isinstance(schema, Nullable):
        return None if value is None else conform(value, schema.schema, where)
    if isinstance(schema, str):
        if not _is(schema, value):
            raise SchemaError(where, f"a {schema}", value)
        return value
    if isinstance(schema, list):
        if not isinstance(value, list):
            raise SchemaError(where, "a list", value)
        return [conform(item, schema[0], f"{where}.{i}".lstrip(".")) for i, item in enumerate(value)]
    if not isinstance(value, dict):
        raise SchemaError(where, "an object", value)
    out = dict(value)
    for key, sub in schema.items():
        if key == "*":
            continue
        name = key.rstrip("?")
        if name not in value:
            if not key.endswith("?"):
                raise SchemaError(f"{where}.{name}".lstrip("."), "a field here", "nothing")
            out[name] = None
        else:
            out[name] = conform(value[name], sub, f"{where}.{name}".lstrip("."))
    if "*" in schema:
        named = {k.rstrip("?") for k in schema if k != "*"}
        for key, item in value.items():
            if key not in named:
                out[key] = conform(item, schema["*"], f"{where}.{key}".lstrip("."))
    return out
