"""``nextchar inspect``: see inside any model over any text — units, gates, influence — as a page, JSON,
npz and LSTMVis's input."""
from __future__ import annotations

from pathlib import Path

import click

from .common import (
    check_default_output,
    claim_output_folder,
    clear_errors,
    command_line,
    device_option,
    one_text,
    overwrite_option,
    prepare_outputs,
    refuse_overwriting_inputs,
    text_options,
)


def _units(ctx, param, value: str | None) -> list[int] | None:
    if value is None:
        return None
    try:
        units = [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of unit numbers, e.g. 3,17,42") from None
    if not units or min(units) < 0:
        raise click.BadParameter(f"{value!r}: expected unit numbers >= 0, e.g. 3,17,42")
    return units


def _features(ctx, param, values: tuple[str, ...]) -> dict[str, str]:
    features = {}
    for value in values:
        name, sep, pattern = value.partition("=")
        if not sep or not name.strip() or not pattern:
            raise click.BadParameter(f"{value!r}: expected NAME=REGEX, e.g. keyword='def|class'")
        features[name.strip()] = pattern
    return features


@click.command()
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@text_options("The text to look at the model through.", 200, "the page (strips, heatmaps, projection)")
@click.option("--layer", default=None, type=click.IntRange(min=0),
              help="Layer whose units the strips and the projection show.  [default: the last]")
@click.option("--units", default=None, callback=_units,
              help="Units shown as strips, e.g. 3,17,42.  [default: the best unit per feature]")
@click.option("--feature", "features", multiple=True, callback=_features, metavar="NAME=REGEX",
              help="A feature to search units for: 1 inside a match of REGEX, 0 outside (repeatable).")
@click.option("--position", default=None, type=int,
              help="Position whose influence is shaded.  [default: the last shown]")
@click.option("--horizon", default=32, show_default=True, type=click.IntRange(min=0),
              help="Farthest distance K of the influence.")
@click.option("--html", "html_path", default="inspect.html", show_default=True, type=click.Path(dir_okay=False),
              help="The page (self-contained, opens offline).")
@click.option("--json", "json_path", default=None, type=click.Path(dir_okay=False),
              help="Everything as JSON, every position's arrays (texts up to 100,000 characters).")
@click.option("--npz", "npz_path", default=None, type=click.Path(dir_okay=False),
              help="Every position's arrays as float32 .npz (layer0.h, layer0.gate.i, ..., probs), any length.")
@click.option("--lstmvis", "lstmvis_dir", default=None, type=click.Path(file_okay=False),
              help="Write LSTMVis's input (states HDF5, ids, dictionary, lstm.yml) into this folder (needs h5py).")
@overwrite_option
@device_option
def inspect(checkpoint, text, text_file, rows, offset, layer, units, features, position, horizon, html_path,
            json_path, npz_path, lstmvis_dir, overwrite, device) -> None:
    """See inside a model over --text or --text-file: every layer's h (and c) and gates, the units that track
    features of the text, gate saturation, how far back each prediction looks (influence), and the hidden
    state's path; written as a page (--html), --json, --npz and --lstmvis."""
    from ..device import resolve_device
    from ..inspect.inspection import InspectOptions, check_inspect_memory, check_options
    from ..run.checkpoint import load_checkpoint
    from .predict_output import read_pieces

    one_text(text, text_file)
    outputs = {"--html": html_path, "--json": json_path, "--npz": npz_path}
    refuse_overwriting_inputs({**outputs, "--lstmvis": lstmvis_dir},
                              {"the checkpoint": checkpoint, "the --text-file": text_file})
    check_default_output("html_path", html_path, "--html", overwrite)
    prepare_outputs(outputs)
    options = InspectOptions(rows, offset, layer, units, position, horizon, features)
    with claim_output_folder(lstmvis_dir, "inspect --lstmvis", "--lstmvis", overwrite), clear_errors():
        if lstmvis_dir:
            from ..inspect.exports import require_h5py

            require_h5py()
        ckpt = load_checkpoint(checkpoint)
        model = ckpt.build_model(resolve_device(device))
        if text is None:
            if Path(text_file).is_file():  # its size bounds its characters: refuse before reading it
                check_inspect_memory(Path(text_file).stat().st_size, model.config, len(ckpt.vocab), rows)
            text = "".join(read_pieces(text_file, "inspect"))
        options = check_options(model, ckpt.vocab, text, options)
        if json_path:
            from ..inspect.exports import check_json_length

            check_json_length(len(text))
        document = _run(model, ckpt.vocab, text, options, checkpoint, html_path, json_path, npz_path, lstmvis_dir)
    click.echo(_summary(document))
    for flag, path in (("page", html_path), ("json", json_path), ("npz", npz_path), ("lstmvis", lstmvis_dir)):
        if path:
            click.echo(f"{flag}: {path}")


def _run(model, vocab, text, options, checkpoint, html_path, json_path, npz_path, lstmvis_dir) -> dict:
    """One pass over the text; the arrays of every position go straight into the npz, and through a store
    on disk when --json or --lstmvis reads them back."""
    from contextlib import ExitStack

    from tqdm.auto import tqdm

    from ..inspect import exports
    from ..inspect.inspection import inspect_text
    from ..inspect.npz import NpzWriter
    from ..outputs import atomic_file

    widths = exports.array_widths(model.config, len(vocab))
    with ExitStack() as stack:
        sinks, store = [], None
        if npz_path:
            sinks.append(NpzWriter(stack.enter_context(atomic_file(npz_path, "wb")), len(text), widths))
        if json_path or lstmvis_dir:
            folder = stack.enter_context(exports.temporary_folder(json_path or lstmvis_dir))
            store = exports.ArrayStore(folder, len(text), widths)
            stack.callback(store.release)
            sinks.append(store)
        with tqdm(total=len(text), unit=" chars", unit_scale=True, disable=None, leave=False,
                  dynamic_ncols=True) as bar:
            document = inspect_text(model, vocab, text, options, sinks, bar.update)
        document.update(checkpoint=checkpoint, command=command_line())
        if npz_path:
            sinks[0].finish()
        if store is not None:
            store.close()
            if json_path:
                exports.write_json(document, store, text, json_path)
            if lstmvis_dir:
                exports.write_lstmvis(document, store, text, lstmvis_dir)
        if html_path:
            _write_page(document, checkpoint, html_path)
    return document


def _write_page(document: dict, source: str, path: str) -> None:
    from ..outputs import write_text_atomic
    from ..report import render
    from ..report.inputs import ReportInput

    write_text_atomic(path, render([ReportInput("inspect", source, document)]))


def _summary(document: dict) -> str:
    """What the terminal shows: the model, the best unit per built-in feature, saturation, the horizon."""
    lines = [f"{document['family']}, {document['num_layers']} layer(s), hidden {document['hidden_size']}: "
             f"{document['length']} characters traced"]
    for strip in document["strips"]:
        why = f"{strip['feature']} (r = {strip['correlation']:+.2f})" if strip["feature"] else "chosen"
        lines.append(f"  layer {strip['layer']} unit {strip['unit']:>4}: {why}")
    found = document["influence"]
    curve = ", ".join(f"{v:.3g}" for v in found["mean_by_distance"][:8])
    lines.append(f"influence at position {found['position']} (next {found['target']!r}); "
                 f"mean by distance 0..7: {curve}")
    return "\n".join(lines)
