"""The `wldetect` command: one sub-command per workflow step, each a thin shell around the step's function.

User errors (`WLDetectError`) print as one line on stderr and exit with status 2, never a traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from wldetect.errors import WLDetectError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Train fast language identifiers from frozen LLM token embeddings; measure what token masking does.",
)

DEMO_CONFIG = Path("params/training/demo.yaml")


@app.callback()
def _commands() -> None:
    """Keeps `wldetect STEP ...` a command group even while it has one command."""


@app.command()
def demo(
    config: Path = typer.Option(DEMO_CONFIG, "--config", help="training parameter file of the embedded default"),
) -> None:
    """Load the embedded default (MiniLM embeddings, wordfreq corpus, shipped dev set) and summarise it."""
    from wldetect.config import load_training_config
    from wldetect.sources import demo as demo_source
    from wldetect.sources.data import prepare_training_dataset
    from wldetect.sources.hub import load_model
    from wldetect.tokenization import configure, encode_texts

    training_config = load_training_config(config)
    model = load_model(training_config.model)
    print(model.summary())
    data = prepare_training_dataset(training_config.dataset, training_config.model.language_codes)
    tokenizer = configure(model.tokenizer, training_config.model.inference.max_sequence_length)
    encoded = encode_texts(tokenizer, data.texts(0, len(data)))
    print(
        f"Demo corpus: {len(data):,} examples in {len(data.report.per_language)} languages, "
        f"{int(encoded.lengths.sum()):,} tokens (mean {encoded.lengths.mean():.1f} per example)"
    )
    print(f"Development set: {len(demo_source.devset_languages())} languages in {demo_source.DEVSET_DIR}")


def main() -> None:
    try:
        app()
    except WLDetectError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
