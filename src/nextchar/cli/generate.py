"""``nextchar generate``: one sample streamed as it is drawn, many samples as one batched computation, or
beam search; --json records every sample with its log probability."""
from __future__ import annotations

import sys

import click

from .common import (
    SEED,
    clear_errors,
    command_line,
    ctrl_c_interrupts,
    device_option,
    prepare_outputs,
    refuse_overwriting_inputs,
    set_threads,
    threads_option,
)


def _refuse_mixing(ctx: click.Context, beam: int | None, num_samples: int) -> None:
    """--beam is deterministic: sampling's flags make no sense beside it."""
    if beam is None:
        return
    given = [f"--{name.replace('_', '-')}" for name in ("temperature", "top_k", "top_p", "greedy", "num_samples")
             if ctx.get_parameter_source(name) is click.core.ParameterSource.COMMANDLINE]
    if given:
        raise click.UsageError(f"--beam searches deterministically; drop {', '.join(given)}")


@click.command()
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.option("--prompt", default="\\n", show_default=True, help="Text to warm up on; \\n stands for a newline.")
@click.option("--length", default=500, show_default=True, type=click.IntRange(min=0), help="Characters to generate.")
@click.option("--temperature", default=0.8, show_default=True, type=click.FloatRange(min=0),
              help="Softmax temperature: lower is more conservative; must be > 0 unless --greedy.")
@click.option("--top-k", default=None, type=click.IntRange(min=1), help="Sample only among the k most likely.")
@click.option("--top-p", default=None, type=click.FloatRange(0, 1, min_open=True),
              help="Nucleus sampling: only among the likeliest characters whose probabilities (after --temperature "
                   "and --top-k) reach P.")
@click.option("--greedy", is_flag=True, help="Always take the most likely character.")
@click.option("--seed", default=0, show_default=True, type=SEED, help="Sampling seed (sample i has its own stream).")
@click.option("--num-samples", default=1, show_default=True, type=click.IntRange(min=1),
              help="Independent samples, drawn together (one forward per step for all).")
@click.option("--beam", default=None, type=click.IntRange(min=1),
              help="Beam search with this many beams instead of sampling (deterministic).")
@click.option("--length-penalty", default=0.0, show_default=True, type=float,
              help="With --beam: rank by log probability / length ** this (favours longer ones with --stop).")
@click.option("--stop", default=None, help="End a sample at the first occurrence of this string (\\n: newline).")
@click.option("--json", "json_path", default=None, type=click.Path(dir_okay=False),
              help="Write the samples, each with its log probability, as JSON.")
@device_option
@threads_option(1)
@click.pass_context
def generate(ctx, checkpoint, prompt, length, temperature, top_k, top_p, greedy, seed, num_samples, beam,
             length_penalty, stop, json_path, device, threads) -> None:
    """Generate text from a checkpoint: warm up on --prompt, then sample one character at a time (or keep the
    --beam likeliest continuations). One sample is printed as it is drawn; Ctrl-C keeps what was generated."""
    from ..device import resolve_device
    from ..generate import check_length_penalty
    from ..run.checkpoint import load_checkpoint

    _refuse_mixing(ctx, beam, num_samples)
    with clear_errors():
        check_length_penalty(length_penalty)  # before any work: NaN or 1e308 would rank beams by NaN
    refuse_overwriting_inputs({"--json": json_path}, {"the checkpoint": checkpoint})
    prepare_outputs({"--json": json_path})
    set_threads(threads)
    prompt, stop = prompt.replace("\\n", "\n"), None if stop is None else stop.replace("\\n", "\n")
    how = {"temperature": temperature, "top_k": top_k, "top_p": top_p, "greedy": greedy, "seed": seed, "stop": stop}
    with clear_errors():
        ckpt = load_checkpoint(checkpoint)
        model = ckpt.build_model(resolve_device(device))
        if beam is not None:
            samples = [_beam(model, ckpt.vocab, prompt, length, beam, length_penalty, stop)]
        elif num_samples == 1:
            samples = [_stream(model, ckpt.vocab, prompt, length, how)]
        else:
            samples = _many(model, ckpt.vocab, prompt, length, num_samples, how)
    if json_path:
        payload = {"samples": [{"text": prompt + s.text, "continuation": s.text, "logprob": s.logprob}
                               for s in samples],
                   "prompt": prompt, "temperature": None if greedy or beam else temperature, "top_k": top_k,
                   "top_p": top_p, "seed": seed, "greedy": greedy, "beam": beam,
                   "length_penalty": length_penalty if beam else None,
                   "stop": stop, "command": command_line()}
        from ..outputs import write_json

        with clear_errors():
            write_json(json_path, payload)
        click.echo(f"wrote {json_path}", err=True)


def _stream(model, vocab, prompt, length, how: dict):
    """One sample, each character printed as it is drawn (``how``: sample's keyword arguments)."""
    from ..generate import Sample, logprob_of, sample

    characters = sample(model, vocab, prompt, length, **how)
    out, text = sys.stdout, []
    out.write(prompt)
    try:  # a long sample shows as it goes, and Ctrl-C keeps what was printed
        with ctrl_c_interrupts():
            for char in characters:
                text.append(char)
                out.write(char)
                out.flush()
    except KeyboardInterrupt:
        out.write("\n")
        out.flush()
        click.echo(f"stopped by Ctrl-C after {len(text)} of {length} characters", err=True)
        sys.exit(130)
    out.write("\n")
    return Sample("".join(text), logprob_of(model, vocab, prompt, "".join(text)), True)


def _many(model, vocab, prompt, length, num_samples, how: dict):
    """N samples drawn together, printed once drawn, with a progress bar over their characters (on a
    terminal); Ctrl-C prints only the samples begun, each as far as it got."""
    from tqdm.auto import tqdm

    from ..generate import sample_many

    samples: list = []
    bar = tqdm(total=num_samples * length, unit=" chars", unit_scale=True, disable=None, leave=False,
               dynamic_ncols=True)
    try:
        with ctrl_c_interrupts():
            sample_many(model, vocab, prompt, length, num_samples, into=samples, progress=bar.update, **how)
    except KeyboardInterrupt:
        bar.close()
        drawn = [s for s in samples if s.text]
        _print(prompt, drawn)
        click.echo(f"stopped by Ctrl-C: {len(drawn)} of {num_samples} samples begun, the last as far as it got",
                   err=True)
        sys.exit(130)
    bar.close()
    _print(prompt, samples)
    return samples


def _beam(model, vocab, prompt, length, beam, length_penalty, stop):
    from ..generate import beam_search

    best = beam_search(model, vocab, prompt, length, beam, length_penalty, stop)
    click.echo(prompt + best.text)
    return best


def _print(prompt: str, samples) -> None:
    for i, s in enumerate(samples):
        click.echo(f"--- sample {i} (log probability {s.logprob:.3f})")
        click.echo(prompt + s.text)
