"""Importance criteria: the one list the CLI, the window and recipes read (no torch import
here, so ``--help`` stays instant). The scores come from ``weights`` (parameter-driven) and
``activations`` (data-driven, one pass over calibration batches); ``studio.core.verbs.score``
is the one way to compute them."""

from __future__ import annotations

WEIGHT_CRITERIA = ("l1", "l2", "group_norm", "fpgm", "bn_scale", "random")
DATA_CRITERIA = (
    "apoz",
    "mean_activation",
    "hrank",
    "taylor",
    "thinet",
    "pfa",
    "lasso",
    "subspace",
    "kl",
)
ALL = WEIGHT_CRITERIA + DATA_CRITERIA
DEFAULT = "l1"

DESCRIPTIONS = {
    "l1": "L1 norm of the producing filters (Li et al. 2017)",
    "l2": "L2 norm of the producing filters",
    "group_norm": "L2 norm over every coupled weight (DepGraph's group magnitude)",
    "fpgm": "distance to the other filters (FPGM: near the geometric median = replaceable)",
    "bn_scale": "mean |gamma| of the group's norm layers (network slimming)",
    "random": "seeded random scores: the baseline every criterion must beat",
    "apoz": "1 - average percentage of zeros after the activation (needs data)",
    "mean_activation": "mean |activation| (needs data)",
    "hrank": "average rank of each channel's feature maps (HRank; needs data)",
    "taylor": "|activation x gradient| (Taylor expansion; needs data and a backward pass)",
    "thinet": "ThiNet: greedy least contribution to the next layer's output (needs data)",
    "pfa": "PCA of pooled activations: redundant channels first (PFA; needs data)",
    "lasso": "LASSO channel selection on the next layer's output (He et al. 2017; needs data; "
    "pair with reconstruction)",
    "subspace": "subspace clustering of feature maps: one representative per cluster kept "
    "first, the rest by the new information they add (needs data)",
    "kl": "KL divergence of the model's outputs when the channel is removed: a global "
    "criterion (needs data; one forward per channel chunk)",
}


def needs_data(criterion: str) -> bool:
    return criterion in DATA_CRITERIA


def check(criterion: str) -> str:
    """``criterion`` if known, else a one-line ``StudioError``."""
    if criterion not in ALL:
        from studio.core.errors import StudioError

        raise StudioError(f"unknown criterion '{criterion}' (choose from {', '.join(ALL)})")
    return criterion


def score(
    model,
    s,
    criterion: str,
    data=None,
    *,
    batches: int = 8,
    batch_size: int = 64,
    device="cpu",
    seed: int = 0,
    cancel=None,
):
    """Scores of every channel of every group of ``s`` under ``criterion`` -- the one way to
    compute them. A generator: data-driven criteria need ``data`` (a ``DataSource``) and
    yield progress per calibration batch; returns ``{group id: GroupScores}``."""
    check(criterion)
    if criterion in WEIGHT_CRITERIA:
        from studio.core.criteria import weights

        return weights.score(model, s, criterion, seed=seed)
    from studio.core.criteria.activations import pass_size, score_data
    from studio.core.errors import StudioError
    from studio.core.train.data import loader

    if data is None:
        raise StudioError(f"criterion '{criterion}' is data-driven: give a data source", fix="data")
    if criterion == "kl":
        from studio.core.criteria.kl import KL_IMAGES, score_kl

        n = max(1, min(KL_IMAGES, batches * batch_size))
        x = next(iter(loader(data.calibration, n, shuffle=True, seed=seed)))[0]
        return (yield from score_kl(model, s, x, device=device, cancel=cancel))
    # Read the images a pass at a time: the same images in the same order as batches of
    # ``batch_size`` (one shuffled order), without holding a whole batch of large images.
    step = min(batch_size, pass_size(s, criterion, device))
    dl = loader(data.calibration, step, shuffle=True, seed=seed)
    return (
        yield from score_data(
            model,
            s,
            criterion,
            dl,
            batches=-(-batches * batch_size // step),
            device=device,
            cancel=cancel,
            seed=seed,
            pass_images=step,
        )
    )


def compute(model, s, criterion: str, data=None, **kwargs) -> dict:
    """``score`` run to its end, without progress events (``studio.core.score``)."""
    from studio.core.jobs import run

    return run(score(model, s, criterion, data, **kwargs))
