"""``nextchar export``: a checkpoint as a page that runs in the browser (--html) or as ONNX (--onnx)."""
from __future__ import annotations

from pathlib import Path

import click

from .common import clear_errors, prepare_outputs, refuse_overwriting_inputs


@click.command()
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.option("--html", "html_path", default=None, type=click.Path(dir_okay=False),
              help="One self-contained page running the model in the browser (weights and forward pass inline).")
@click.option("--onnx", "onnx_path", default=None, type=click.Path(dir_okay=False),
              help="The model as one ONNX graph: x (T, B) int64, h0 (c0) -> logits (T, B, V), hn (cn). Needs onnx.")
@click.option("--opset", default=17, show_default=True, type=click.IntRange(min=14),
              help="ONNX opset of --onnx.")
def export(checkpoint, html_path, onnx_path, opset) -> None:
    """Run a checkpoint anywhere: --html writes a page you can send (type a prompt, see the next-character
    distribution, sample with a seed), --onnx an ONNX graph that gives the same numbers."""
    from ..run.checkpoint import load_checkpoint

    if not html_path and not onnx_path:
        raise click.UsageError("give --html FILE, --onnx FILE or both")
    outputs = {"--html": html_path, "--onnx": onnx_path}
    refuse_overwriting_inputs(outputs, {"the checkpoint": checkpoint})
    prepare_outputs(outputs)
    with clear_errors():
        if onnx_path:
            from ..export.onnx_graph import check_opset

            check_opset(opset)  # the extra's absence, or an opset it cannot write: an error before any work
        ckpt = load_checkpoint(checkpoint)
        model = ckpt.build_model("cpu").eval()
        if html_path:
            from ..export.html import export_html
            from ..outputs import write_text_atomic

            page = write_text_atomic(html_path, export_html(model, ckpt.vocab, Path(checkpoint).name))
            click.echo(f"page: {page} ({page.stat().st_size / 1024:.0f} KB)")
        if onnx_path:
            from ..export.onnx_graph import export_onnx

            path = export_onnx(model, onnx_path, opset)
            click.echo(f"onnx: {path} (opset {opset}, {path.stat().st_size / 1024:.0f} KB)")
