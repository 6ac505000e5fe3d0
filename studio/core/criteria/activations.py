"""Data-driven importance criteria, computed in one pass over K calibration batches.

A group's channels, after their activation, are the *input* of the layers that consume
them (the group's ``in`` members). One forward pre-hook per consuming conv/linear layer
collects every statistic at once -- there is no pass per layer -- and maps the consumer's
input channels back to the group's channels:

- ``apoz``: 1 - average percentage of zeros (Hu et al. 2016); more zeros, less important;
- ``mean_activation``: mean |activation|;
- ``hrank``: average matrix rank of each channel's feature map (Lin et al. 2020), all
  ranks of a batch in one batched SVD;
- ``taylor``: |activation x gradient| summed over the map, averaged over images (Molchanov
  et al. 2017); needs a backward pass per batch;
- ``thinet``: ThiNet (Luo et al. 2017) -- on sampled output locations of the consuming
  layer, each input channel's contribution; a greedy search removes first the channels
  whose summed contribution stays smallest (Gram-matrix form, O(C^2) per layer);
- ``pfa``: PCA of the spatially pooled activations (Suau et al. 2020); channels strongly
  correlated with another go first, dead ones before all; the number of principal
  components holding 95% of the energy is reported as the group's suggested width.

- ``lasso``: channel selection by LASSO (He et al. 2017) -- on the same sampled
  contributions as ThiNet, the regression of the consumer's output on every channel's
  contribution, ``min ||y - Z beta||^2 + lambda |beta|_1``, solved along a path of
  decreasing lambda: a channel's score is how early it enters the path (the channels the
  sparsest fits keep are the most important). ``studio.core.plan.reconstruct`` then refits
  the consumers by least squares, the method's second step;
- ``subspace``: subspace clustering of the feature maps -- channels whose maps (at sampled
  locations) lie in the same low-dimensional subspace are redundant. Spectral clustering on
  the |correlation| affinity into k clusters (k: the principal components holding 95% of
  the energy, at most 256), then within each cluster a pivoted Cholesky order: the first
  pivot is the representative (its whole variance is new), every other channel brings the
  share of its variance the channels before it do not explain; the score is the standard
  deviation of that new part relative to the group's typical channel. Sparse subspace
  clustering (a LASSO per channel) finds the same structure on clean data at C times the
  cost; the spectral form is one eigendecomposition.

Members where a criterion does not apply (HRank on a linear layer's input, ThiNet on a
grouped conv) fall back to mean |activation|. Low scores mean "remove first".
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from studio.core.criteria import DATA_CRITERIA  # noqa: E402
from studio.core.criteria.weights import GroupScores
from studio.core.jobs import CancelToken, Events, progress
from studio.core.structure.map import Group, Member, StructureMap

# the data criteria computed here, in one pass (KL: ``studio.core.criteria.kl``)
ACTIVATION_CRITERIA = tuple(c for c in DATA_CRITERIA if c != "kl")
THINET_SAMPLES = 4096  # sampled (image, location, output channel) triples per layer
THINET_PER_BATCH = 8  # images per batch whose patches are sampled
SUBSPACE_SAMPLES = 8192  # sampled (image, location) rows of feature maps per layer
# criteria computed on a whole group's channels at once (not channel by channel)
GROUP_SPACE = ("thinet", "lasso", "pfa", "subspace")
PFA_ENERGY = 0.95


def _reduce_dims(x: torch.Tensor) -> tuple[int, ...]:
    return (0,) + tuple(range(2, x.dim())) if x.dim() > 2 else (0,)


class _LayerStats:
    """Per input channel of one consuming layer, accumulated over batches."""

    def __init__(self, name: str, module: nn.Module, criterion: str, rng: torch.Generator):
        self.name, self.module, self.criterion, self.rng = name, module, criterion, rng
        self.abs_sum = self.zeros = None
        self.elems = 0
        self.rank_sum = None
        self.images = 0
        self.taylor = None
        self.z_rows: list[torch.Tensor] = []  # ThiNet contributions [S, Cin]
        self.pooled: list[torch.Tensor] = []  # PFA: pooled activations [N, Cin]
        self.is_conv = isinstance(module, nn.modules.conv._ConvNd)
        self.grouped = self.is_conv and module.groups > 1

    def observe(self, x: torch.Tensor) -> None:
        xd = x.detach()
        dims = _reduce_dims(xd)
        a = torch.linalg.vector_norm(xd, 1, dims)  # sum |x| without an |x| copy
        self.abs_sum = a if self.abs_sum is None else self.abs_sum + a
        if self.criterion == "apoz":
            z = (xd == 0).sum(dims, dtype=torch.int32).long()  # no int64 copy of the map
            self.zeros = z if self.zeros is None else self.zeros + z
        self.elems += xd.numel() // xd.shape[1]
        c = self.criterion
        if c == "hrank" and xd.dim() == 4:
            r = torch.linalg.matrix_rank(xd.float()).sum(0)  # one batched SVD
            self.rank_sum = r if self.rank_sum is None else self.rank_sum + r
            self.images += xd.shape[0]
        elif c == "taylor" and x.requires_grad:

            def on_grad(g, xd=xd):
                t = (
                    (xd * g).sum(tuple(range(2, xd.dim()))).abs().sum(0)
                    if xd.dim() > 2
                    else (xd * g).abs().sum(0)
                )
                self.taylor = t if self.taylor is None else self.taylor + t

            x.register_hook(on_grad)
            self.images += xd.shape[0]
        elif c in ("thinet", "lasso") and not self.grouped:
            if sum(len(r) for r in self.z_rows) < THINET_SAMPLES:
                self.z_rows.append(self._contributions(xd))
        elif c == "subspace":
            if sum(len(r) for r in self.pooled) < SUBSPACE_SAMPLES:
                self.pooled.append(self._locations(xd))
        elif c == "pfa":
            self.pooled.append(xd.mean(tuple(range(2, xd.dim()))) if xd.dim() > 2 else xd)

    def _locations(self, x: torch.Tensor) -> torch.Tensor:
        """Subspace clustering: every channel's value at sampled locations of the feature
        maps, [samples, Cin] (a linear layer's input: one row per image)."""
        if x.dim() <= 2:
            return x.reshape(x.shape[0], -1).float()
        flat = x.flatten(2)  # [n, C, L]
        per = 16
        li = torch.randint(0, flat.shape[2], (x.shape[0], per), generator=self.rng)
        rows = torch.gather(flat, 2, li[:, None, :].expand(-1, flat.shape[1], -1))
        return rows.permute(0, 2, 1).reshape(-1, flat.shape[1]).float()

    def _contributions(self, x: torch.Tensor) -> torch.Tensor:
        """ThiNet: for sampled output entries y = sum_c z_c, the per-channel terms z_c."""
        m, g = self.module, self.rng
        n = min(THINET_PER_BATCH, x.shape[0])
        if not self.is_conv:  # linear: y[oc] = sum_c W[oc, c] x[c]
            xs = x[:n].reshape(n, -1)
            oc = torch.randint(0, m.out_features, (n * 4,), generator=g)
            rows = xs.repeat_interleave(4, 0)
            return (m.weight.detach()[oc] * rows).float()
        xs, kernel, dil, pad, stride = x[:n], m.kernel_size, m.dilation, m.padding, m.stride
        if xs.dim() == 3:  # Conv1d: unfold as a 2-d input of height 1
            xs = xs[:, :, None]
            kernel, dil, pad, stride = (1, *kernel), (1, *dil), (0, *pad), (1, *stride)
        cols = F.unfold(xs, kernel, dil, pad, stride)  # [n, C*k, L]
        per = 16
        li = torch.randint(0, cols.shape[2], (n, per), generator=g)
        patches = torch.stack([cols[i, :, li[i]] for i in range(n)])  # [n, C*k, per]
        patches = patches.permute(0, 2, 1).reshape(n * per, m.in_channels, -1)
        oc = torch.randint(0, m.out_channels, (n * per,), generator=g)
        w = m.weight.detach()[oc].reshape(n * per, m.in_channels, -1)
        return (w * patches).sum(2).float()

    # -- per input channel results -------------------------------------------------------
    def mean_abs(self) -> np.ndarray:
        return (self.abs_sum.double() / max(self.elems, 1)).cpu().numpy()

    def channel_score(self) -> np.ndarray | None:
        """Scores per input channel, or None when the criterion works in group space."""
        c = self.criterion
        if c == "apoz":
            return 1.0 - (self.zeros.double() / max(self.elems, 1)).cpu().numpy()
        if c == "hrank" and self.rank_sum is not None:
            return (self.rank_sum.double() / max(self.images, 1)).cpu().numpy()
        if c == "taylor" and self.taylor is not None:
            return (self.taylor.double() / max(self.images, 1)).cpu().numpy()
        if c in GROUP_SPACE and not self._has_group_space_data():
            return self.mean_abs()
        if c in GROUP_SPACE:
            return None
        return self.mean_abs()

    def _has_group_space_data(self) -> bool:
        return bool(self.z_rows) if self.criterion in ("thinet", "lasso") else bool(self.pooled)


def _to_root(g: Group, m: Member, per_channel: np.ndarray) -> np.ndarray:
    """Average a member's per-channel values over the member channels of each group channel."""
    s = np.bincount(m.root_idx, weights=per_channel[m.idx], minlength=g.channels)
    return s / np.maximum(m.counts, 1)


def _to_root_cols(g: Group, m: Member, rows: torch.Tensor, reduce: str) -> torch.Tensor:
    """[S, Cin] -> [S, G]: columns of a member's channels summed/averaged per group channel."""
    out = torch.zeros(rows.shape[0], g.channels, dtype=torch.float64)
    idx = torch.as_tensor(m.idx)
    out.index_add_(1, torch.as_tensor(m.root_idx), rows[:, idx].double())
    if reduce == "mean":
        out /= torch.as_tensor(np.maximum(m.counts, 1), dtype=torch.float64)
    return out


def thinet_order(z: torch.Tensor) -> np.ndarray:
    """Greedy ThiNet: channels in the order they are removed (first = least important).

    Minimises ||sum_{c in removed} z_c||^2 step by step using the Gram matrix."""
    gram = (z.T @ z).numpy()
    n = gram.shape[0]
    removed = np.zeros(n, bool)
    acc_dot = np.zeros(n)
    acc = 0.0
    order = []
    for _ in range(n):
        cost = acc + 2 * acc_dot + np.diag(gram)
        cost[removed] = np.inf
        j = int(np.argmin(cost))
        order.append(j)
        removed[j] = True
        acc = float(cost[j])
        acc_dot += gram[j]
    return np.asarray(order)


def pfa_scores(pooled: torch.Tensor, energy: float = PFA_ENERGY) -> tuple[np.ndarray, int]:
    """(score per channel, suggested width). Dead channels score 0; a channel strongly
    correlated with another scores low (redundant); variance breaks ties."""
    x = pooled.double()
    x = x - x.mean(0, keepdim=True)
    cov = (x.T @ x) / max(len(x) - 1, 1)
    var = torch.diag(cov).clamp_min(0)
    ev = torch.linalg.eigvalsh(cov).flip(0).clamp_min(0)
    total = float(ev.sum())
    width = int((torch.cumsum(ev, 0) / total < energy).sum()) + 1 if total > 0 else 1
    std = var.sqrt()
    alive = std > 1e-12 * max(float(std.max()), 1e-30)
    corr = cov / (std[:, None] * std[None, :]).clamp_min(1e-30)
    corr.fill_diagonal_(0)
    corr[~alive, :] = 0
    corr[:, ~alive] = 0
    uniq = 1.0 - corr.abs().max(1).values  # 0 when an exact copy of another channel exists
    rel_var = var / var.max().clamp_min(1e-30)
    score = (uniq + 1e-3 * rel_var) * alive
    return score.numpy(), min(width, len(ev))


# Bytes of activations one scoring pass may hold. On a CPU ResNet-50 runs as fast per image
# at batch 1 as at batch 16 (docs/benchmarks.md, realisation), and small passes keep the
# window's peak memory near the model's own (docs/benchmarks.md, memory); a GPU wants
# large batches.
SCORING_MEMORY = 32 * 2**20
SCORING_MEMORY_CUDA = 2 * 2**30


def pass_size(s: StructureMap, criterion: str, device="cpu", budget: int | None = None) -> int:
    """Images per forward pass so that scoring stays within ``budget`` bytes of
    activations (default: ``SCORING_MEMORY``, on CUDA ``SCORING_MEMORY_CUDA``): a plain
    forward holds a few layer outputs at a time (the largest one,
    times 4, bounds it). Taylor's backward keeps every output of the forward, as training
    does: it gets 8x the budget, or small images would be scored in passes so short that
    per-layer overheads dominate (ResNet-18 at 64x64: 5.3x a plain forward instead of 3.6x)."""
    sizes = [int(np.prod(r.out_shape)) for r in s.table.rows if r.out_shape]
    if not sizes:
        return 64
    if budget is None:
        cuda = torch.device(device).type == "cuda"
        budget = SCORING_MEMORY_CUDA if cuda else SCORING_MEMORY
    if criterion == "taylor":
        budget, per_image = 8 * budget, 4 * 2 * sum(sizes)
    else:
        per_image = 4 * 4 * max(sizes)
    return int(max(1, min(64, budget // per_image)))


def score_data(
    model: nn.Module,
    s: StructureMap,
    criterion: str,
    data_loader,
    *,
    batches: int = 8,
    device="cpu",
    cancel: CancelToken | None = None,
    seed: int = 0,
    pass_images: int | None = None,
) -> Events:
    """Yields progress per batch; returns ``{group id: GroupScores}``. Each batch runs in
    passes of ``pass_images`` images (default: ``pass_size``), so a large model at a
    large batch does not hold a whole batch of activations; the statistics add up over
    passes to the same result."""
    if criterion not in ACTIVATION_CRITERIA:
        raise ValueError(
            f"unknown activation criterion '{criterion}' "
            f"(choose from {', '.join(ACTIVATION_CRITERIA)})"
        )
    device = torch.device(device)
    model = model.eval().to(device)
    rng = torch.Generator().manual_seed(seed)
    consumers: dict[str, list[tuple[Group, Member]]] = defaultdict(list)
    for g in s.groups:
        for m in g.members:
            if m.dim == "in" and s.table.rows[m.row].kind in ("conv", "linear"):
                consumers[m.layer].append((g, m))
    stats = {
        name: _LayerStats(name, model.get_submodule(name), criterion, rng) for name in consumers
    }
    handles = [
        model.get_submodule(n).register_forward_pre_hook(
            lambda mod, args, st=st: st.observe(args[0])
        )
        for n, st in stats.items()
    ]
    total = min(batches, len(data_loader))
    step = pass_images or pass_size(s, criterion, device)
    try:
        for i, (x, y) in enumerate(data_loader):
            if i >= total:
                break
            for xp, yp in zip(x.split(step), y.split(step)):
                if cancel is not None:
                    cancel.check()
                xp, yp = xp.to(device), yp.to(device)
                if criterion == "taylor":
                    with torch.enable_grad():  # the batch's mean loss, pass by pass
                        loss = F.cross_entropy(model(xp), yp, reduction="sum") / len(x)
                        loss.backward()
                else:
                    with torch.no_grad():
                        model(xp)
            yield progress(i + 1, total, f"scoring ({criterion})")
    finally:
        for h in handles:
            h.remove()
        if criterion == "taylor":
            model.zero_grad(set_to_none=True)
    return _finalize(s, criterion, consumers, stats)


def _finalize(s: StructureMap, criterion, consumers, stats) -> dict[str, GroupScores]:
    per_group: dict[str, dict[str, np.ndarray]] = defaultdict(dict)
    extras: dict[str, dict] = defaultdict(dict)
    for name, pairs in consumers.items():
        st = stats[name]
        ch = st.channel_score()
        for g, m in pairs:
            if ch is not None:
                per_group[g.id][m.layer] = _to_root(g, m, ch)
            elif criterion == "thinet":
                z = _to_root_cols(g, m, torch.cat(st.z_rows), "sum")
                order = thinet_order(z)
                rank = np.empty(g.channels)
                rank[order] = np.arange(g.channels)
                per_group[g.id][m.layer] = rank / max(g.channels - 1, 1)
            elif criterion == "lasso":
                z = _to_root_cols(g, m, torch.cat(st.z_rows), "sum")
                per_group[g.id][m.layer] = lasso_scores(z.numpy())
            elif criterion == "subspace":
                rows = _to_root_cols(g, m, torch.cat(st.pooled), "mean")
                sc, k = subspace_scores(rows.numpy(), seed=len(g.id))
                per_group[g.id][m.layer] = sc
                extras[g.id].setdefault("subspace_clusters", []).append(k)
            else:  # pfa
                pooled = _to_root_cols(g, m, torch.cat(st.pooled), "mean")
                sc, width = pfa_scores(pooled)
                per_group[g.id][m.layer] = sc
                extras[g.id].setdefault("pfa_widths", []).append(width)
    out = {}
    for g in s.groups:
        members = per_group.get(g.id)
        if not members:  # nothing consumes it (cannot happen for a prunable group)
            out[g.id] = GroupScores(np.zeros(g.channels), {})
            continue
        group = np.mean(np.stack(list(members.values())), 0)
        extra = dict(extras.get(g.id, {}))
        if "subspace_clusters" in extra:
            extra["subspace_clusters"] = int(round(float(np.mean(extra["subspace_clusters"]))))
        if "pfa_widths" in extra:
            extra["pfa_width"] = int(round(float(np.mean(extra["pfa_widths"]))))
        out[g.id] = GroupScores(group, members, extra)
    return out


# -- LASSO channel selection ------------------------------------------------------------
LASSO_STEPS = 24  # points on the regularisation path
LASSO_ITERS = 150  # FISTA iterations per point (warm-started)


def lasso_path(gram: np.ndarray, xty: np.ndarray, lambdas, iters: int = LASSO_ITERS):
    """Solutions of ``min_b 1/2 b'Gb - b'c + lam |b|_1`` along ``lambdas`` (decreasing),
    by FISTA warm-started from the previous point: [len(lambdas), n]."""
    n = len(xty)
    step = 1.0 / max(float(np.linalg.eigvalsh(gram)[-1]), 1e-30)
    beta = np.zeros(n)
    out = []
    for lam in lambdas:
        y, b_prev, t = beta.copy(), beta.copy(), 1.0
        for _ in range(iters):
            g = y - step * (gram @ y - xty)
            b = np.sign(g) * np.maximum(np.abs(g) - step * lam, 0.0)
            t_next = (1 + np.sqrt(1 + 4 * t * t)) / 2
            y = b + ((t - 1) / t_next) * (b - b_prev)
            b_prev, t = b, t_next
        beta = b_prev
        out.append(beta.copy())
    return np.asarray(out)


def lasso_scores(z: np.ndarray, steps: int = LASSO_STEPS) -> np.ndarray:
    """He et al.'s channel selection on contributions ``z`` [samples, channels]: regress the
    output ``y = sum_c z_c`` on the channels with an L1 penalty on their coefficients;
    channels score by how early (at how large a penalty) they enter the path, in [0, 1];
    ties by the final |coefficient| x column norm. Columns are unit-normalised first, so
    the penalty does not simply favour channels of large magnitude."""
    z = np.asarray(z, np.float64)
    norms = np.linalg.norm(z, axis=0)
    alive = norms > 1e-12 * max(float(norms.max(initial=0.0)), 1e-30)
    n = z.shape[1]
    if not alive.any():
        return np.zeros(n)
    zn = z[:, alive] / norms[alive]
    y = z.sum(1)
    gram, xty = zn.T @ zn, zn.T @ y
    lam_max = float(np.abs(xty).max())
    lambdas = lam_max * np.logspace(0, -3, steps)[1:]
    path = lasso_path(gram, xty, lambdas)
    active = np.abs(path) > 1e-12
    entered = np.where(active.any(0), active.argmax(0), len(lambdas))
    final = np.abs(path[-1]) * norms[alive]
    tie = final / max(float(final.max()), 1e-30)
    size = norms[alive] / norms[alive].max()  # orders the channels that never entered
    score = np.zeros(n)
    score[alive] = (len(lambdas) - entered + 0.5 * tie + 0.01 * size) / (len(lambdas) + 1)
    return score


# -- subspace clustering ----------------------------------------------------------------
def kmeans(x: np.ndarray, k: int, seed: int = 0, iters: int = 50) -> np.ndarray:
    """Labels of a k-means++ clustering of the rows of ``x`` (seeded). Distances as
    |x|^2 - 2 x.c + |c|^2, the seeding's nearest-centre distances updated incrementally:
    O(n k d) memory-light steps."""
    rng = np.random.default_rng(seed)
    n = len(x)
    k = max(1, min(k, n))
    sq = (x * x).sum(1)
    idx = [int(rng.integers(n))]
    d = ((x - x[idx[0]]) ** 2).sum(1)
    for _ in range(k - 1):
        j = int(rng.choice(n, p=d / d.sum())) if d.sum() > 0 else int(rng.integers(n))
        idx.append(j)
        d = np.minimum(d, ((x - x[j]) ** 2).sum(1))
    c = x[idx].copy()
    labels = None
    for _ in range(iters):
        new = (sq[:, None] - 2 * x @ c.T + (c * c).sum(1)[None]).argmin(1)
        if labels is not None and (new == labels).all():
            break
        labels = new
        for j in range(k):
            if (labels == j).any():
                c[j] = x[labels == j].mean(0)
    return labels


MAX_CLUSTERS = 256


def subspace_scores(
    rows: np.ndarray, energy: float = PFA_ENERGY, seed: int = 0
) -> tuple[np.ndarray, int]:
    """(score per channel, number of clusters) from feature-map samples [samples, C]."""
    x = np.asarray(rows, np.float64)
    x = x - x.mean(0, keepdims=True)
    n = x.shape[1]
    var = (x * x).mean(0)
    alive = var > 1e-12 * max(float(var.max(initial=0.0)), 1e-30)
    score = np.zeros(n)
    if alive.sum() <= 1:
        score[alive] = 1.0
        return score, int(alive.sum())
    xa = x[:, alive] / np.sqrt(var[alive])
    corr = (xa.T @ xa) / len(xa)
    ev = np.clip(np.linalg.eigvalsh(corr)[::-1], 0, None)
    k = min(int((np.cumsum(ev) / ev.sum() < energy).sum()) + 1, MAX_CLUSTERS)
    aff = np.abs(corr)
    deg = aff.sum(1)
    lap = aff / np.sqrt(np.outer(deg, deg))
    _w, vec = np.linalg.eigh(lap)
    emb = vec[:, -k:]
    emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    labels = kmeans(emb, k, seed)
    sub = np.zeros(int(alive.sum()))
    std = np.sqrt(var[alive])
    rel = std / std.mean()
    for j in np.unique(labels):
        members = np.flatnonzero(labels == j)
        sub[members] = _pivot_residuals(corr[np.ix_(members, members)], rel[members])
    # the new signal a channel carries: the share of its variance its cluster's earlier
    # picks do not explain, times its spread relative to the group's typical channel --
    # continuous, so groups of unique channels do not all tie at 1 under global ranking
    score[alive] = np.sqrt(sub) * rel + 1e-6
    return score, k


def _pivot_residuals(c: np.ndarray, tie: np.ndarray) -> np.ndarray:
    """Pivoted Cholesky of a correlation matrix: for every channel, the share of its
    variance not explained by the channels picked before it (the first pick: 1)."""
    n = len(c)
    resid = np.diag(c).astype(np.float64).copy()
    basis = np.zeros((n, n))
    out = np.zeros(n)
    left = np.ones(n, bool)
    t = 0
    for _ in range(n):
        pick = int(np.argmax(np.where(left, resid + 1e-9 * tie, -np.inf)))
        out[pick] = max(resid[pick], 0.0)
        left[pick] = False
        if resid[pick] <= 1e-12:
            continue
        col = (c[:, pick] - basis[:, :t] @ basis[pick, :t]) / np.sqrt(resid[pick])
        basis[:, t] = col
        t += 1
        resid = resid - col**2
    return out
