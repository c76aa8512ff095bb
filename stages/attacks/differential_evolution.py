"""Black-box few-pixel attack by differential evolution (DE), restricted to a region.

Wang et al., *Analyzing Adversarial Robustness of Deep Neural Networks in Pixel Space: a
Semantic Perspective* (after Su et al.'s one-pixel attack) change k = 1, 3 or 5 pixels of an
image, each pixel anywhere in a region (the whole image, its foreground or its background),
and search the pixels and their colours with DE using only the model's output probabilities.

Encoding. A candidate is k genes of (1 + C) numbers in [0, 1]: a *position* and C colour
values. Colours map [0, 1] onto the model's input range; by default they are rounded to the 256
levels of 8-bit images, the paper's "real number between 0 and 255" per channel of images
stored as bytes. How a position becomes a pixel is the *search* (:attr:`DEConfig.search`):

- ``"composite"`` (the paper's, §III-D, Eqs. 17-18): the position indexes the whole image,
  ``floor(u * H * W)`` in row-major order (the paper's (x, y) with the two coordinates fused),
  and the candidate is evaluated on the composite image x̄ whose region pixels come from the
  modified image x' and whose other pixels from the clean image x: C(x̄) = C_F(x') ∪ C_B(x) for
  a foreground attack (Eq. 17), C_F(x) ∪ C_B(x') for a background one (Eq. 18). A pixel that
  lands outside the region is therefore not written, and a candidate whose k pixels all land
  outside *is* the clean image, with the clean image's fitness ("if the perturbed pixel is
  located in the background [...] the value of the fitness function will not change at all",
  §III-D). Such candidates are counted per image (:attr:`DEResult.idle_queries`).
- ``"indexed"`` (ours, stronger): the position indexes the image's own list of region pixels,
  ``floor(u * n_region)``, so every candidate lies in the region and no evaluation is spent on
  the clean image. The paper names searching the region itself as future work (§III-D, last
  paragraph). A small region (a thin background) wastes most composite candidates, so the two
  searches can differ most there.

On the full region the two are the same search: the region list is the whole image in
row-major order, so every gene decodes to the same pixel and the random streams are shared.
The k positions of a candidate are made distinct by a deterministic repair (see
:func:`_distinct_indices`) over whatever the positions index, so a candidate proposes exactly k
pixels (the composite search writes those of them inside the region).

DE settings (:class:`DEConfig`) are the paper's §IV-B: population 400, at most 100
generations, Latin-hypercube initialisation, mutation factor F ~ U[0.5, 1) drawn every
generation ("dithering"), binomial crossover, early stop per image when the label changes
(untargeted) or equals the target (targeted). The fitness is the true-class probability
(minimised) or the target-class probability (maximised). The paper's wording on dithering is
scipy's ``differential_evolution`` documentation verbatim and every stated setting is one of
that function's defaults, so the unstated crossover rate is scipy's ``recombination`` 0.7.
The mutation is the one the paper prints, Eq. (11): rand/1, v = x_r1 + F (x_r2 - x_r3) with
r1, r2, r3 and i distinct (``strategy="rand1"``, the default). scipy's default ``best1bin``
(base vector = the population's best) is the option ``strategy="best1"``.

Batching. All images and their whole populations are evaluated together, one chunked forward
pass (at most ``max_batch`` images per chunk) per generation, on whatever device the images
are on. Images stop independently: a finished image leaves the compute. Selection is
synchronous (all trials of a generation are made from the previous generation), which is
the textbook DE of Storn & Price and scipy's ``updating="deferred"``; scipy's default
"immediate" updating is inherently sequential.

Determinism. Each image gets its own random stream, seeded from the caller's generator, so
an image's search does not depend on which other images share the run (up to floating-point
differences the model itself may show between batch compositions). Random numbers are drawn
on the CPU, so a given seed gives the same candidates on every device.

Caller's responsibilities, as for :mod:`stages.attacks.pgd`: put the model in the mode to be
attacked (normally ``eval()``) and on the images' device. The attack needs only the model's
outputs (logits; probabilities are their softmax) and never reads gradients.

Why one module of ~900 lines: the DE search is one algorithm whose parts (the encoding, the two
searches, initialisation, mutation and crossover, the batched and chunked scoring, the targeted
pairs) share one candidate layout and are read together; its settings are :class:`DEConfig` and
how a device scores candidates is stages/attacks/de_forward.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

import torch
from torch import nn

from stages.utils.layouts import as_batch_masks, require_images, require_labels
from stages.utils.precision import (
    MemoryFormat,
    Precision,
    autocast,
    check_memory_format,
    check_precision,
    to_memory_format,
)
from stages.utils.progress import progress as progress_bar

Strategy = Literal["best1", "rand1"]
STRATEGIES: tuple[str, ...] = ("best1", "rand1")
Search = Literal["composite", "indexed"]
SEARCHES: tuple[str, ...] = ("composite", "indexed")
Init = Literal["latin_hypercube", "random"]
INITS: tuple[str, ...] = ("latin_hypercube", "random")


@dataclass(frozen=True)
class DEConfig:
    """Settings of the DE attack; defaults are Wang et al.'s (§IV-B) for CIFAR-10.

    Attributes:
        pixels: k, how many pixels change (the paper: 1, 3 or 5).
        population: candidates per image (the paper: 400, the total population, as in Su et
            al.'s one-pixel attack; not scipy's per-parameter multiplier).
        max_generations: generations after the initial population (the paper: 100). An image
            uses at most ``population * (max_generations + 1)`` model evaluations.
        mutation: F is drawn from U[mutation[0], mutation[1]) once per generation (the paper:
            [0.5, 1), "dithering"; scipy's default). Equal bounds give a constant F.
        crossover_rate: CR of the binomial crossover. The paper includes binomial crossover but
            states no CR; 0.7 is scipy's default ``recombination``, and the paper's other
            settings are all scipy's defaults (see the module docstring). Su et al.'s
            one-pixel attack used no crossover, i.e. CR = 1.
        strategy: ``"rand1"`` (the paper's Eq. (11): base vector = a random member) or
            ``"best1"`` (scipy's default ``best1bin``: base vector = the population's best).
        search: ``"composite"`` (the paper's §III-D: positions over the whole image, a pixel
            outside the region left clean, Eqs. 17-18) or ``"indexed"`` (ours: positions index
            the region's own pixels). The same search on the full region; see the module
            docstring.
        init: ``"latin_hypercube"`` (the paper) or ``"random"`` (uniform).
        targeted: maximise the target class's probability instead of minimising the true one's.
        early_stop: stop an image as soon as one of its candidates succeeds (the paper).
        value_range: (low, high) of the model's input pixels; colour genes map onto it.
        color_levels: round colours to this many evenly spaced levels (256: 8-bit images, the
            paper's 0..255); None keeps them continuous.
        max_batch: most candidate images per forward pass (memory bound, not a result knob).
        precision: the precision the search scores candidates at: ``"fp32"``, or ``"bf16"`` /
            ``"fp16"`` (autocast; see "Speed" in the module docstring). Every candidate that
            succeeds at low precision is scored again in fp32 and counts only if it succeeds
            there, and the reported candidate is scored in fp32, so a reported success always
            holds in fp32. Low precision can still change which candidates the search visits.
        memory_format: the candidates' layout, ``"contiguous"`` or ``"channels_last"`` (the
            caller stores the model's weights in the same layout; speed only).
        skip_repeats: do not score a candidate whose image equals its parent's or another
            candidate's of the same image in the same batch; it gets that image's scores
            (speed only: the same image has the same scores).
    """

    pixels: int = 1
    population: int = 400
    max_generations: int = 100
    mutation: tuple[float, float] = (0.5, 1.0)
    crossover_rate: float = 0.7
    strategy: Strategy = "rand1"
    search: Search = "composite"
    init: Init = "latin_hypercube"
    targeted: bool = False
    early_stop: bool = True
    value_range: tuple[float, float] = (0.0, 1.0)
    color_levels: int | None = 256
    max_batch: int = 4096
    precision: Precision = "fp32"
    memory_format: MemoryFormat = "contiguous"
    skip_repeats: bool = True

    def __post_init__(self) -> None:
        if self.pixels < 1:
            raise ValueError(f"pixels must be >= 1, got {self.pixels}")
        # rand1 needs three parents distinct from each other and from the candidate itself.
        if self.population < 4:
            raise ValueError(f"population must be >= 4, got {self.population}")
        if self.max_generations < 0:
            raise ValueError(f"max_generations must be >= 0, got {self.max_generations}")
        lo, hi = self.mutation
        if not 0.0 <= lo <= hi <= 2.0:
            raise ValueError(f"mutation must be (low, high) with 0 <= low <= high <= 2, got {self.mutation}")
        if not 0.0 <= self.crossover_rate <= 1.0:
            raise ValueError(f"crossover_rate must be in [0, 1], got {self.crossover_rate}")
        if self.strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {self.strategy!r}; valid values are: {', '.join(STRATEGIES)}")
        if self.search not in SEARCHES:
            raise ValueError(f"unknown search {self.search!r}; valid values are: {', '.join(SEARCHES)}")
        if self.init not in INITS:
            raise ValueError(f"unknown init {self.init!r}; valid values are: {', '.join(INITS)}")
        if not self.value_range[0] < self.value_range[1]:
            raise ValueError(f"value_range must be (low, high) with low < high, got {self.value_range}")
        if self.color_levels is not None and self.color_levels < 2:
            raise ValueError(f"color_levels must be >= 2 or None, got {self.color_levels}")
        if self.max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {self.max_batch}")
        check_precision(self.precision, "DEConfig")
        check_memory_format(self.memory_format, "DEConfig")


@dataclass
class DEResult:
    """Per-image outcome of :func:`differential_evolution_attack`; every tensor is on the CPU.

    For a successful image the reported candidate is the best-fitness successful candidate of
    the generation that succeeded; otherwise it is the final population's best member.

    Attributes:
        success: bool (N,): the label changed (untargeted) / became the target (targeted).
        queries: int64 (N,): model evaluations spent on the image.
        generations: int64 (N,): generations run after the initial population (0: the initial
            population already succeeded).
        confidence: float (N,): the fitness probability of the reported candidate: the true
            class's (untargeted) or the target's (targeted).
        adversarial_label: int64 (N,): the model's label for the reported candidate.
        adversarial_confidence: float (N,): the probability of that label (the paper's
            "Confidence" columns average it over successes).
        pixel_coords: int64 (N, k, 2): (row, col) of the reported candidate's k pixels.
        pixel_values: float (N, k, C): their proposed values, in the model's input range.
        in_region: bool (N, k): which of them lie in the region, i.e. were written into
            ``adversarial``: all of them for the indexed search, those inside the region for
            the composite one (the others leave the clean pixel).
        adversarial: (N, C, H, W): the reported candidate image; outside the region it equals
            the clean image, whatever the search.
        idle_queries: int64 (N,): model evaluations spent on candidates with no pixel in the
            region, i.e. on the clean image itself (the composite search's wasted candidates;
            always 0 for the indexed search).
        forwards: int64 (N,): images the model was actually run on for this image: the
            candidates scored (``queries`` less the repeats skipped, see
            :attr:`DEConfig.skip_repeats`), plus, at low precision, the fp32 confirmations.
        low_precision_rejections: int64 (N,): candidates that succeeded at the search's low
            precision and failed in fp32 (always 0 for an fp32 search).
        target: int64 (N,) for targeted runs, else None.
        history: float (N, max_generations + 1) when requested: the best fitness probability
            after each generation (column 0: initial population), NaN after the image stopped.
    """

    success: torch.Tensor
    queries: torch.Tensor
    generations: torch.Tensor
    confidence: torch.Tensor
    adversarial_label: torch.Tensor
    adversarial_confidence: torch.Tensor
    pixel_coords: torch.Tensor
    pixel_values: torch.Tensor
    in_region: torch.Tensor
    adversarial: torch.Tensor
    idle_queries: torch.Tensor
    forwards: torch.Tensor
    low_precision_rejections: torch.Tensor
    target: torch.Tensor | None = None
    history: torch.Tensor | None = None

    @property
    def pixels_in_region(self) -> torch.Tensor:
        """int64 (N,): how many of each reported candidate's k pixels changed the image."""
        return self.in_region.sum(dim=1)


# ------------------------------------------------------------------ encoding


@dataclass
class _Positions:
    """What a position gene can point at, per image (see the module docstring, "Encoding")."""

    pixels: torch.Tensor  # int64 (N, max_n): flat pixel indices (row-major), padded
    counts: torch.Tensor  # int64 (N,): how many of ``pixels`` each image has
    region: torch.Tensor  # bool (N, H * W): the pixels a candidate may change


def _positions(region: torch.Tensor, k: int, search: Search) -> _Positions:
    """The positions of ``search`` on ``region`` (bool (N, 1, H, W)).

    Indexed: each image's region pixels, row-major, padded to the largest count (padding is
    never selected, since decoded indices are clamped below the image's count). Composite: every
    pixel of the image, for every image. Both need k region pixels per image, so that the two
    searches attack the same images and a k-pixel attack can change k pixels.
    """
    flat = region.reshape(region.shape[0], -1)
    counts = flat.sum(dim=1)
    short = (counts < k).nonzero().flatten().tolist()
    if short:
        shown = ", ".join(f"#{i} ({int(counts[i])} px)" for i in short[:5])
        more = f" and {len(short) - 5} more" if len(short) > 5 else ""
        raise ValueError(
            f"a {k}-pixel attack needs at least {k} region pixels per image; images {shown}{more} have fewer"
        )
    if search == "composite":
        n, size = flat.shape
        every = torch.arange(size, device=flat.device).expand(n, size)
        return _Positions(every, torch.full_like(counts, size), flat)
    # A stable sort on "not in region" lists each image's region pixels first, in row-major order.
    order = torch.argsort((~flat).to(torch.uint8), dim=1, stable=True)
    return _Positions(order[:, : int(counts.max())].contiguous(), counts, flat)


def _distinct_indices(idx: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Make each row's k indices distinct: an index equal to an earlier one moves up by one
    (cyclically, within 0..count-1) until it is free.

    Deterministic and local (a clash moves to the next position, the next pixel of the region
    list or of the image, not to a random one, so repaired candidates stay near what DE
    proposed). Gene j clashes with at
    most j occupied values, so j trial moves suffice; a free value exists since count >= k.
    """
    idx = idx.clone()
    n = counts.unsqueeze(1)
    for j in range(1, idx.shape[1]):
        col = idx[:, j : j + 1]
        for _ in range(j):
            clash = (col == idx[:, :j]).any(dim=1, keepdim=True)
            col = torch.where(clash, (col + 1) % n, col)
        idx[:, j : j + 1] = col
    return idx


@dataclass
class _Decoded:
    flat: torch.Tensor  # int64 (B, k): flat pixel index in H*W, distinct within a row
    values: torch.Tensor  # (B, k, C): proposed pixel values in the model's range
    inside: torch.Tensor  # bool (B, k): the pixel lies in its image's region (is written)

    def rows(self, index: torch.Tensor | slice) -> _Decoded:
        return _Decoded(self.flat[index], self.values[index], self.inside[index])

    def image_keys(self, owner: torch.Tensor) -> torch.Tensor:
        """float64 (B, 1 + k * (1 + C)): equal rows <=> equal candidate images.

        A candidate image is its clean image (``owner``) with the written pixels (those inside
        the region) set to their values, so the key is the owner followed by the written
        pixels sorted by position, unwritten ones as position -1 with value 0. float64 holds
        every pixel index and colour exactly.
        """
        flat = torch.where(self.inside, self.flat, -1)
        order = flat.argsort(dim=1)
        values = torch.where(self.inside.unsqueeze(2), self.values, 0).gather(
            1, order.unsqueeze(2).expand_as(self.values)
        )
        parts = [owner.unsqueeze(1), flat.gather(1, order), values.flatten(1)]
        return torch.cat([t.to(torch.float64) for t in parts], dim=1)


def _decode(
    genome: torch.Tensor,
    owner: torch.Tensor,
    positions: _Positions,
    cfg: DEConfig,
    channels: int,
    dtype: torch.dtype,
) -> _Decoded:
    """Genomes (B, k * (1 + C)) in [0, 1] of images ``owner`` (B,) -> pixels and values."""
    genes = genome.view(genome.shape[0], cfg.pixels, 1 + channels)
    counts = positions.counts[owner]
    n = counts.unsqueeze(1)
    idx = torch.minimum((genes[:, :, 0] * n).floor().long(), n - 1)
    idx = _distinct_indices(idx, counts)
    flat = positions.pixels[owner.unsqueeze(1), idx]
    colour = genes[:, :, 1:]
    if cfg.color_levels is not None:
        steps = cfg.color_levels - 1
        colour = torch.round(colour * steps) / steps
    lo, hi = cfg.value_range
    inside = positions.region[owner.unsqueeze(1), flat]
    return _Decoded(flat=flat, values=(lo + (hi - lo) * colour).to(dtype), inside=inside)


def _apply(base: torch.Tensor, owner: torch.Tensor, decoded: _Decoded) -> torch.Tensor:
    """The composite images x̄ of ``base[owner]``: (B, C, H, W) copies with each decoded pixel
    written where it lies in the region and the clean pixel kept elsewhere (Wang et al.,
    §III-D, Eqs. 17-18; every pixel is inside for the indexed search)."""
    out = base[owner]  # advanced indexing copies
    b, c, h, w = out.shape
    view = out.view(b, c, h * w)
    rows = torch.arange(b, device=out.device).unsqueeze(1)
    # Indices (B, k) around a slice: the indexed shape is (B, k, C), the values' layout. The
    # k indices of a row are distinct, so no write overwrites another.
    clean = view[rows, :, decoded.flat]
    view[rows, :, decoded.flat] = torch.where(decoded.inside.unsqueeze(2), decoded.values, clean)
    return out


# ------------------------------------------------------------------ randomness


def _initial_population(gen: torch.Generator, size: int, dim: int, init: Init) -> torch.Tensor:
    """(size, dim) points in [0, 1).

    Latin hypercube: each coordinate axis is cut into ``size`` equal strata and every stratum
    holds exactly one point, a different random pairing per axis (McKay et al. 1979); the
    paper uses it "to maximize coverage of the available parameter space".
    """
    jitter = torch.rand(size, dim, generator=gen)
    if init == "random":
        return jitter
    strata = torch.argsort(torch.rand(dim, size, generator=gen), dim=1).T
    return (strata + jitter) / size


def _distinct_others(gen: torch.Generator, size: int, count: int) -> torch.Tensor:
    """(size, count) indices: row i holds ``count`` members distinct from each other and from i.

    Draw r uniformly among the size - 1 - t still-allowed values, then map it onto them by
    stepping over the excluded values in ascending order.
    """
    excluded = [torch.arange(size)]
    for t in range(count):
        r = torch.randint(0, size - 1 - t, (size,), generator=gen)
        for e in torch.stack(excluded, dim=1).sort(dim=1).values.unbind(dim=1):
            r = r + (r >= e).long()
        excluded.append(r)
    return torch.stack(excluded[1:], dim=1)


@dataclass
class _Draws:
    """One generation's random numbers for the alive images, stacked (M, ...)."""

    f: torch.Tensor  # (M, 1, 1)
    parents: torch.Tensor  # (M, P, 2 or 3)
    crossover: torch.Tensor  # bool (M, P, D)
    forced: torch.Tensor  # int64 (M, P): the gene always taken from the mutant
    resample: torch.Tensor  # (M, P, D): fresh values for genes pushed out of [0, 1]


def _draw(streams: list[torch.Generator], cfg: DEConfig, dim: int, device: torch.device) -> _Draws:
    size = cfg.population
    n_parents = 2 if cfg.strategy == "best1" else 3
    lo, hi = cfg.mutation
    f, parents, cross, forced, resample = [], [], [], [], []
    for gen in streams:  # the order of draws within a stream is fixed: part of the seed contract
        f.append(lo + (hi - lo) * torch.rand((), generator=gen))
        parents.append(_distinct_others(gen, size, n_parents))
        cross.append(torch.rand(size, dim, generator=gen) < cfg.crossover_rate)
        forced.append(torch.randint(0, dim, (size,), generator=gen))
        resample.append(torch.rand(size, dim, generator=gen))
    return _Draws(
        f=torch.stack(f).view(-1, 1, 1).to(device),
        parents=torch.stack(parents).to(device),
        crossover=torch.stack(cross).to(device),
        forced=torch.stack(forced).to(device),
        resample=torch.stack(resample).to(device),
    )


def _trials(pop: torch.Tensor, energy: torch.Tensor, d: _Draws, cfg: DEConfig) -> torch.Tensor:
    """Mutation, binomial crossover and bound repair for every alive image: (M, P, D)."""
    m, size, dim = pop.shape

    def member(i: int) -> torch.Tensor:
        return torch.gather(pop, 1, d.parents[:, :, i : i + 1].expand(m, size, dim))

    if cfg.strategy == "best1":
        best = energy.argmin(dim=1)
        base = pop[torch.arange(m, device=pop.device), best].unsqueeze(1)
        mutant = base + d.f * (member(0) - member(1))
    else:
        mutant = member(0) + d.f * (member(1) - member(2))
    # Binomial crossover (Storn & Price 1997): each gene from the mutant with probability CR,
    # and one random gene always, so a trial never equals its parent.
    take = d.crossover.clone()
    take.scatter_(2, d.forced.unsqueeze(2), True)
    trial = torch.where(take, mutant, pop)
    # Genes pushed outside [0, 1] are redrawn uniformly inside, as scipy does: clipping would
    # pile candidates onto the boundary (the region list's last pixel, black or white colours).
    outside = (trial < 0) | (trial > 1)
    return torch.where(outside, d.resample, trial)


# ------------------------------------------------------------------ evaluation


@dataclass
class _Scores:
    """The model's verdict on candidates; all fields share one shape."""

    energy: torch.Tensor  # minimised: p_true (untargeted) or -p_target (targeted)
    label: torch.Tensor  # the model's label
    label_prob: torch.Tensor  # its probability
    success: torch.Tensor  # bool

    def fields(self) -> tuple[torch.Tensor, ...]:
        return (self.energy, self.label, self.label_prob, self.success)

    def reshape(self, *shape: int) -> _Scores:
        return _Scores(*(t.reshape(shape) for t in self.fields()))

    def rows(self, keep: torch.Tensor) -> _Scores:
        return _Scores(*(t[keep] for t in self.fields()))

    def where(self, take: torch.Tensor, other: _Scores) -> _Scores:
        """``other`` where ``take``, else self."""
        return _Scores(*(torch.where(take, o, t) for t, o in zip(self.fields(), other.fields(), strict=True)))

    def cat(self, other: _Scores) -> _Scores:
        """Side by side along the population axis."""
        return _Scores(
            *(torch.cat([t, o], dim=1) for t, o in zip(self.fields(), other.fields(), strict=True))
        )


class _Scorer:
    """Scores candidates of the images ``images`` against their ``goal`` classes, counting the
    forward passes per image (see "Speed" in the module docstring)."""

    def __init__(
        self, model: nn.Module, images: torch.Tensor, goal: torch.Tensor, positions: _Positions, cfg: DEConfig
    ) -> None:
        self.model, self.images, self.goal, self.positions, self.cfg = model, images, goal, positions, cfg
        self.forwards = torch.zeros(images.shape[0], dtype=torch.long)
        self.rejections = torch.zeros(images.shape[0], dtype=torch.long)

    def decode(self, owner: torch.Tensor, genome: torch.Tensor) -> _Decoded:
        return _decode(genome, owner, self.positions, self.cfg, self.images.shape[1], self.images.dtype)

    def score(
        self,
        owner: torch.Tensor,
        genome: torch.Tensor,
        parent_keys: torch.Tensor | None = None,
        parent_scores: _Scores | None = None,
    ) -> tuple[_Scores, torch.Tensor, torch.Tensor]:
        """Scores of candidate genomes (B, D) of images ``owner`` (B,); also bool (B,): the
        candidate has no pixel in the region (it is the clean image), and its image keys
        (:meth:`_Decoded.image_keys`). With ``skip_repeats``, a candidate whose key equals
        ``parent_keys`` (its parent's) takes ``parent_scores``, and equal candidates are
        scored once."""
        decoded = self.decode(owner, genome)
        idle = ~decoded.inside.any(dim=1)
        keys = decoded.image_keys(owner)
        if not self.cfg.skip_repeats:
            return self._forward(owner, decoded), idle, keys
        todo = torch.ones(len(owner), dtype=torch.bool, device=owner.device)
        if parent_keys is not None:
            todo = ~(keys == parent_keys).all(dim=1)
        rows = todo.nonzero().flatten()
        unique, inverse = torch.unique(keys[rows], dim=0, return_inverse=True)
        # The first candidate of each distinct image stands for all of them.
        first = torch.full((len(unique),), len(owner), dtype=torch.long, device=owner.device)
        first = first.scatter_reduce(0, inverse, rows, reduce="amin")
        scored = self._forward(owner[first], decoded.rows(first))
        if parent_scores is None:
            return scored.rows(inverse), idle, keys
        fields = []
        for have, new in zip(parent_scores.fields(), scored.fields(), strict=True):
            out = have.clone()
            out[rows] = new[inverse]
            fields.append(out)
        return _Scores(*fields), idle, keys

    def _forward(self, owner: torch.Tensor, decoded: _Decoded) -> _Scores:
        """Run the model on every given candidate, ``max_batch`` at a time."""
        cfg, parts = self.cfg, []
        for start in range(0, len(owner), cfg.max_batch):
            part = slice(start, start + cfg.max_batch)
            batch = _apply(self.images, owner[part], decoded.rows(part))
            parts.append(self.confirmed(batch, owner[part]))
        return _cat(parts, len(owner), self.images.device)

    def confirmed(self, batch: torch.Tensor, owner: torch.Tensor) -> _Scores:
        """Scores of candidate images ``batch`` at the search's precision, with every success
        scored again in fp32 and replaced by its fp32 scores (a success must hold in fp32)."""
        scores = self.verdict(batch, owner, self.cfg.precision)
        if self.cfg.precision != "fp32" and bool(scores.success.any()):
            hit = scores.success.nonzero().flatten()
            exact = self.verdict(batch[hit], owner[hit], "fp32")
            self.rejections += torch.bincount(
                owner[hit][~exact.success].cpu(), minlength=len(self.rejections)
            )
            fields = []
            for low, full in zip(scores.fields(), exact.fields(), strict=True):
                out = low.clone()
                out[hit] = full.to(out.dtype)
                fields.append(out)
            scores = _Scores(*fields)
        return scores

    def verdict(self, batch: torch.Tensor, owner: torch.Tensor, precision: Precision) -> _Scores:
        """The model's scores of candidate images ``batch`` of images ``owner`` at ``precision``."""
        self.forwards += torch.bincount(owner.cpu(), minlength=len(self.forwards))
        with torch.no_grad(), autocast(batch.device, precision):
            logits = self.model(to_memory_format(batch, self.cfg.memory_format))
        probs = torch.softmax(logits.float(), dim=1)
        goal = self.goal[owner]
        p_goal = probs.gather(1, goal.unsqueeze(1)).squeeze(1)
        label_prob, label = probs.max(dim=1)
        success = label == goal if self.cfg.targeted else label != goal
        return _Scores(-p_goal if self.cfg.targeted else p_goal, label, label_prob, success)


def _cat(parts: list[_Scores], count: int, device: torch.device) -> _Scores:
    if parts:
        return _Scores(*(torch.cat(t) for t in zip(*(p.fields() for p in parts), strict=True)))
    empty = torch.zeros(count, device=device)
    return _Scores(empty, empty.long(), empty, empty.bool())


def _evaluate(
    model: nn.Module,
    images: torch.Tensor,
    owner: torch.Tensor,
    genome: torch.Tensor,
    goal: torch.Tensor,
    positions: _Positions,
    cfg: DEConfig,
) -> tuple[_Scores, torch.Tensor]:
    """Score candidate genomes (B, D) of images ``owner`` (B,); also bool (B,): the candidate
    has no pixel in the region (it is the clean image)."""
    scores, idle, _ = _Scorer(model, images, goal, positions, cfg).score(owner, genome)
    return scores, idle


# ------------------------------------------------------------------ the attack


def differential_evolution_attack(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    region: torch.Tensor | None,
    config: DEConfig | None = None,
    *,
    targets: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    record_history: bool = False,
    progress: bool = False,
    desc: str = "differential evolution",
) -> DEResult:
    """Few-pixel DE attack on every image at once (see the module docstring).

    Args:
        model: maps (B, C, H, W) images in ``config.value_range`` to logits (B, classes).
        images: clean images, float (N, C, H, W). Not modified.
        labels: integer (N,): the classes y the attack moves away from (untargeted fitness and
            success): the true classes, or the model's clean predictions as in the paper
            (§III-A: "y represents the true class predicted by the classifier before being
            attacked").
        region: bool (N, 1, H, W), True where pixels may change (see
            :mod:`stages.masks.regions`); the per-image (N, H, W) layout is accepted too and
            converted. None for the whole image. Outside it no candidate changes a pixel,
            whatever ``config.search``.
        config: DE settings; None for the paper's defaults (:class:`DEConfig`).
        targets: integer (N,), required iff ``config.targeted``; must differ from ``labels``.
        generator: seeds the per-image random streams (CPU or CUDA); None uses torch's
            global generator.
        record_history: also return the best fitness per generation.
        progress: show a progress bar over generations, labelled ``desc``.

    Raises:
        ValueError: on a layout other than the documented ones (naming the argument and both
            shapes), or a region with fewer than ``config.pixels`` pixels.
    """
    cfg = config or DEConfig()
    where = "differential_evolution_attack"
    require_images(images, "images", where)
    require_labels(labels, images, "labels", where)
    n, channels, height, width = images.shape
    device = images.device
    if region is None:
        region = torch.ones(n, 1, height, width, dtype=torch.bool, device=device)
    region = as_batch_masks(region, images, "region", where)
    if cfg.targeted:
        if targets is None:
            raise ValueError(f"{where}: a targeted attack needs targets, integer (N,)")
        require_labels(targets, images, "targets", where)
        if bool((targets.cpu() == labels.cpu()).any()):
            raise ValueError("a target equals the image's label; a targeted attack needs another class")
        goal = targets.to(device=device, dtype=torch.long)
    else:
        if targets is not None:
            raise ValueError("targets given to an untargeted attack; set DEConfig(targeted=True)")
        goal = labels.to(device=device, dtype=torch.long)

    positions = _positions(region.to(device), cfg.pixels, cfg.search)
    images = images.detach()
    size, dim = cfg.population, cfg.pixels * (1 + channels)
    seed_device = generator.device if generator is not None else torch.device("cpu")
    # One seed per image; any non-negative int64 is a valid torch seed.
    seeds = torch.randint(0, torch.iinfo(torch.int64).max, (n,), generator=generator, device=seed_device)
    seeds = seeds.tolist()
    streams = [torch.Generator().manual_seed(int(s)) for s in seeds]

    # Outputs, filled as images finish.
    out_genome = torch.zeros(n, dim, device=device)
    out_energy = torch.zeros(n, device=device)
    out_label = torch.zeros(n, dtype=torch.long, device=device)
    out_label_prob = torch.zeros(n, device=device)
    out_success = torch.zeros(n, dtype=torch.bool, device=device)
    generations = torch.zeros(n, dtype=torch.long)
    queries = torch.zeros(n, dtype=torch.long)
    idle_queries = torch.zeros(n, dtype=torch.long)
    history = torch.full((n, cfg.max_generations + 1), math.nan) if record_history else None

    # State of the alive images, compacted as images finish.
    alive = torch.arange(n, device=device)
    pop = torch.stack([_initial_population(g, size, dim, cfg.init) for g in streams]).to(device)

    scorer = _Scorer(model, images, goal, positions, cfg)

    def evaluate(
        genomes: torch.Tensor, parent_keys: torch.Tensor | None = None, parents: _Scores | None = None
    ) -> tuple[_Scores, torch.Tensor]:
        m = alive.numel()
        s, idle, keys = scorer.score(
            alive.repeat_interleave(size),
            genomes.reshape(-1, dim),
            None if parent_keys is None else parent_keys.reshape(m * size, -1),
            None if parents is None else parents.reshape(m * size),
        )
        idle_queries[alive.cpu()] += idle.view(m, size).sum(dim=1).cpu()
        return s.reshape(m, size), keys.view(m, size, -1)

    scores, keys = evaluate(pop)
    # The candidates an image may finish with: its population, plus (after generation 0) the
    # generation's trials, since a successful trial can lose the selection to its parent.
    pool, pool_scores = pop, scores

    for generation in progress_bar(
        range(cfg.max_generations + 1), desc=desc, enabled=progress, unit="generation"
    ):
        alive_cpu = alive.cpu()
        queries[alive_cpu] += size
        generations[alive_cpu] = generation
        if history is not None:
            best = scores.energy.min(dim=1).values.float().cpu()
            history[alive_cpu, generation] = -best if cfg.targeted else best

        last = generation == cfg.max_generations
        any_success = pool_scores.success.any(dim=1)
        done = (any_success | last) if cfg.early_stop else torch.full_like(any_success, last)
        if bool(done.any()):
            # Report the best successful candidate if there is one, else the best candidate.
            inf = torch.full_like(pool_scores.energy, math.inf)
            best_success = torch.where(pool_scores.success, pool_scores.energy, inf).argmin(dim=1)
            which = torch.where(any_success, best_success, pool_scores.energy.argmin(dim=1))
            rows = torch.arange(alive.numel(), device=device)[done]
            which, idx = which[done], alive[done]
            out_genome[idx] = pool[rows, which]
            out_energy[idx] = pool_scores.energy[rows, which]
            out_label[idx] = pool_scores.label[rows, which]
            out_label_prob[idx] = pool_scores.label_prob[rows, which]
            out_success[idx] = pool_scores.success[rows, which]
            keep = ~done
            alive, pop, keys = alive[keep], pop[keep], keys[keep]
            scores = scores.rows(keep)
            streams = [s for s, k in zip(streams, keep.tolist(), strict=True) if k]
        if alive.numel() == 0 or last:
            break

        # One DE generation for the images still running.
        trial = _trials(pop, scores.energy, _draw(streams, cfg, dim, device), cfg)
        trial_scores, trial_keys = evaluate(trial, keys, scores)
        better = trial_scores.energy < scores.energy  # the paper: replace only if the trial is better
        pop = torch.where(better.unsqueeze(2), trial, pop)
        keys = torch.where(better.unsqueeze(2), trial_keys, keys)
        scores = scores.where(better, trial_scores)
        pool, pool_scores = torch.cat([pop, trial], dim=1), scores.cat(trial_scores)

    all_images = torch.arange(n, device=device)
    decoded = _decode(out_genome, all_images, positions, cfg, channels, images.dtype)
    adversarial = _apply(images, all_images, decoded)
    if cfg.precision != "fp32":
        # The reported candidate's verdict, label and confidence are fp32's (a low-precision
        # success is already confirmed; this also covers the images that did not succeed).
        exact = _cat(
            [
                scorer.verdict(adversarial[part], all_images[part], "fp32")
                for part in (slice(i, i + cfg.max_batch) for i in range(0, n, cfg.max_batch))
            ],
            n,
            device,
        )
        out_energy, out_label, out_label_prob, out_success = exact.fields()
    confidence = -out_energy if cfg.targeted else out_energy
    return DEResult(
        success=out_success.cpu(),
        queries=queries,
        generations=generations,
        confidence=confidence.cpu(),
        adversarial_label=out_label.cpu(),
        adversarial_confidence=out_label_prob.cpu(),
        pixel_coords=torch.stack([decoded.flat // width, decoded.flat % width], dim=2).cpu(),
        pixel_values=decoded.values.cpu(),
        in_region=decoded.inside.cpu(),
        adversarial=adversarial.cpu(),
        idle_queries=idle_queries,
        forwards=scorer.forwards,
        low_precision_rejections=scorer.rejections,
        target=goal.cpu() if cfg.targeted else None,
        history=history,
    )


# ------------------------------------------------------------------ targeted sweeps


@dataclass
class TargetedSweep:
    """Every (image, target) pair of :func:`targeted_all_pairs`, one row per pair.

    Attributes:
        image_index: int64 (M,): the attacked image, an index into the caller's batch.
        source: int64 (M,): that image's label.
        target: int64 (M,): the target class.
        result: the attack's outcome per pair (row i belongs to pair i).
        num_images: N, the caller's batch size.
        num_classes: the number of classes.
    """

    image_index: torch.Tensor
    source: torch.Tensor
    target: torch.Tensor
    result: DEResult
    num_images: int
    num_classes: int

    def success_matrix(self) -> torch.Tensor:
        """bool (N, num_classes): [i, t] = image i was pushed to class t (False for its own class)."""
        out = torch.zeros(self.num_images, self.num_classes, dtype=torch.bool)
        out[self.image_index, self.target] = self.result.success
        return out

    def targets_reached(self) -> torch.Tensor:
        """int64 (N,): how many target classes each image reached (the paper's Fig. 3)."""
        return self.success_matrix().sum(dim=1)

    def untargeted_success(self) -> torch.Tensor:
        """bool (N,): some targeted attack on the image changed its label, to the target or not.

        Our reading of the paper's "Untargeted2" (success rate "calculated from targeted attack
        results"), which is never below its targeted success rate.
        """
        fooled = self.result.adversarial_label != self.source
        out = torch.zeros(self.num_images, dtype=torch.bool)
        out.index_put_((self.image_index,), fooled, accumulate=True)
        return out

    def source_target_counts(self) -> torch.Tensor:
        """int64 (num_classes, num_classes): successes per (source, target) (the paper's Figs. 4-5)."""
        counts = torch.zeros(self.num_classes, self.num_classes, dtype=torch.long)
        counts.index_put_((self.source, self.target), self.result.success.long(), accumulate=True)
        return counts


def targeted_all_pairs(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    region: torch.Tensor | None,
    num_classes: int,
    config: DEConfig | None = None,
    *,
    generator: torch.Generator | None = None,
    record_history: bool = False,
    progress: bool = False,
    desc: str = "targeted differential evolution",
) -> TargetedSweep:
    """A targeted attack of every image towards each of the other ``num_classes - 1`` classes.

    The paper's targeted protocol (§IV-B): each image is attacked towards every other class
    separately and a pair counts only if that exact target is reached. All pairs run as one
    batched :func:`differential_evolution_attack` (``config`` with ``targeted`` forced on),
    each pair with its own random stream and early stop. Pairs are ordered by image, then
    target.

    ``labels`` are the sources; pass the model's clean predictions instead of the true labels
    to attack "an image classified as class A" as the paper words it. Layouts as in
    :func:`differential_evolution_attack`: ``images`` float (N, C, H, W), ``labels`` integer
    (N,), ``region`` bool (N, 1, H, W) or (N, H, W) (converted), or None.
    """
    where = "targeted_all_pairs"
    require_images(images, "images", where)
    require_labels(labels, images, "labels", where)
    if region is not None:
        region = as_batch_masks(region, images, "region", where)
    if num_classes < 2:
        raise ValueError(f"a targeted attack needs at least 2 classes, got {num_classes}")
    if bool(((labels < 0) | (labels >= num_classes)).any()):
        raise ValueError(f"labels must lie in 0..{num_classes - 1}")
    cfg = replace(config or DEConfig(), targeted=True)
    n = images.shape[0]
    classes = torch.arange(num_classes, device=labels.device).expand(n, num_classes)
    others = classes != labels.unsqueeze(1)
    target = classes[others]  # row-major: by image, then by class
    image_index = others.nonzero()[:, 0]
    idx = image_index.to(images.device)
    result = differential_evolution_attack(
        model,
        images[idx],
        labels[image_index],
        None if region is None else region[idx],
        cfg,
        targets=target,
        generator=generator,
        record_history=record_history,
        progress=progress,
        desc=desc,
    )
    return TargetedSweep(
        image_index=image_index.cpu(),
        source=labels[image_index].cpu(),
        target=target.cpu(),
        result=result,
        num_images=n,
        num_classes=num_classes,
    )
