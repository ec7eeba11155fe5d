"""Inference commands: train a model, predict a movie to Zarr, candidates from predictions."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import click

from trackdb.cli.options import DB_OPTION, MOVIE_OPTION, POSITIVE, FiniteFloatRange, echo_json, open_store
from trackdb.errors import InputError


def parse_frames(spec: str) -> range:
    try:
        a, b = (int(x) for x in spec.split(":"))
    except ValueError:
        raise InputError(f"--frames must look like A:B (first and one-past-last frame), got {spec!r}") from None
    if not 0 <= a < b:
        raise InputError(f"--frames {spec}: need 0 <= A < B")
    return range(a, b)


@click.command()
@click.argument("dataset", type=click.Path(path_type=Path))
@click.option("--seq", default="01", show_default=True)
@click.option("--frames", "frames_spec", required=True, help="Training frames A:B (B excluded).")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), required=True, help="Model folder.")
@click.option("--steps", type=click.IntRange(min=1), default=2000, show_default=True)
@click.option("--width", type=POSITIVE, default=0.5, show_default=True, help="Channel width factor of the ERFNet.")
@click.option("--crop", type=click.IntRange(min=8), default=128, show_default=True)
@click.option("--batch", type=click.IntRange(min=1), default=4, show_default=True)
@click.option("--lr", type=POSITIVE, default=5e-4, show_default=True)
@click.option(
    "--val-pairs",
    type=click.IntRange(min=0),
    default=3,
    show_default=True,
    help="Last frame pairs of the range held out for validation IoU.",
)
@click.option(
    "--val-every", type=click.IntRange(min=1), default=100, show_default=True, help="Steps between validations."
)
@click.option("--time-limit", type=POSITIVE, default=None, help="Stop after this many seconds (resumable).")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="CPU threads for torch.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default=None, help="cpu or cuda (default: cuda when available).")
@click.option(
    "--resume/--no-resume", default=True, show_default=True, help="Continue from the model folder's checkpoint, if any."
)
@click.option(
    "--init-from",
    type=click.Path(path_type=Path),
    default=None,
    help="Model folder whose weights start the run (fine-tune; fresh optimiser and schedule).",
)
def train(
    dataset: Path,
    seq: str,
    frames_spec: str,
    out_dir: Path,
    steps: int,
    width: float,
    crop: int,
    batch: int,
    lr: float,
    val_pairs: int,
    val_every: int,
    time_limit: float | None,
    threads: int | None,
    seed: int,
    device: str | None,
    resume: bool,
    init_from: Path | None,
) -> None:
    """Train the EmbedTrack-style network on CTC data (masks + lineage); resumes from its checkpoint."""
    from trackdb.stages.train import run_train

    metrics = run_train(
        dataset,
        seq,
        parse_frames(frames_spec),
        out_dir,
        width=width,
        crop=crop,
        batch=batch,
        steps=steps,
        lr=lr,
        val_pairs=val_pairs,
        val_every=val_every,
        seed=seed,
        device=device,
        resume=resume,
        time_limit_s=time_limit,
        num_threads=threads,
        init_from=init_from,
        command="trackdb " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
    )
    echo_json({k: metrics[k] for k in ("best_val_iou", "parameters", "elapsed_s") if k in metrics})


@click.command()
@MOVIE_OPTION
@click.option("--model", "model_dir", type=click.Path(path_type=Path), required=True)
@click.option(
    "--zarr",
    "zarr_path",
    type=click.Path(path_type=Path),
    default=None,
    help="Zarr group for pred/* (default: the movie's, else <db folder>/<movie>.zarr).",
)
@click.option("--tta", is_flag=True, help="8-fold test-time augmentation.")
@click.option("--tile", type=click.IntRange(min=16), default=1024, show_default=True)
@click.option("--overlap", type=click.IntRange(min=0), default=128, show_default=True)
@click.option("--batch", type=click.IntRange(min=1), default=4, show_default=True)
@click.option("--device", default=None)
@DB_OPTION
def predict(
    movie_name: str,
    model_dir: Path,
    zarr_path: Path | None,
    tta: bool,
    tile: int,
    overlap: int,
    batch: int,
    device: str | None,
    db_url: str | None,
) -> None:
    """Predict seediness, offsets, bandwidths and tracking offsets of every frame into Zarr (resumable)."""
    from trackdb.stages.predictions import run_predict

    with open_store(db_url) as store:
        echo_json(
            run_predict(
                store,
                movie_name,
                model_dir,
                zarr_path=zarr_path,
                tta=tta,
                tile=tile,
                overlap=overlap,
                batch=batch,
                device=device,
            )
        )


@click.command("candidates-from-predictions")
@MOVIE_OPTION
@click.option(
    "--min-size", type=click.IntRange(min=1), default=None, help="Smallest cell in pixels (default: the model's)."
)
@click.option("--fg-thresh", type=FiniteFloatRange(0, 1, min_open=True, max_open=True), default=0.5, show_default=True)
@click.option(
    "--merges/--no-merges",
    default=True,
    show_default=True,
    help="Also offer the union of touching clusters whose pixels vote for one centre, so that "
    "the solver can undo an over-split.",
)
@DB_OPTION
def candidates_from_predictions(
    movie_name: str, min_size: int | None, fg_thresh: float, merges: bool, db_url: str | None
) -> None:
    """Clusters of the predictions as candidates (with embeddings and voted previous centres)."""
    from trackdb.stages.predictions import run_candidates_from_predictions

    with open_store(db_url) as store:
        run_id = run_candidates_from_predictions(
            store, movie_name, min_object_size=min_size, fg_thresh=fg_thresh, merges=merges
        )
    click.echo(f"candidates run {run_id} done")


COMMANDS = [train, predict, candidates_from_predictions]
