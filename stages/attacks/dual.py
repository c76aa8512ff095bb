"""Dual-perturbation attack ("Towards Robustness against Unsuspicious Adversarial Examples",
ICLR 2021 submission, §3.2, Eq. 3):

    max_δ  L(h(x + δ), y) + λ · S(x + δ)
    s.t.   ‖δ ∘ F(x)‖_p ≤ eps_F,   ‖δ ∘ B(x)‖_p ≤ eps_B,   p ∈ {∞, 2}

with F the foreground mask, B = 1 - F, and S the *foreground score* (the salience density
summed over F; :func:`stages.saliency.foreground_score`). The sign is the paper's: the
attack *adds* λ·S, so a larger λ keeps predicted attention on the foreground and the large
background perturbation inconspicuous (§3.2: "a salience term that decreases with
increasing salience of the background"; §5.2: FS grows with λ).

The paper's solver (§3.2, "split the dual-perturbation attack into two individual processes
in each iteration ... then merge these two perturbations when computing the gradients"):
PGD with random start where each iteration takes the gradient at the merged x + δ, then
steps the foreground and background parts with their own step sizes and projects each onto
its own ball. That is exactly a :class:`~stages.attacks.threats.Threat` whose step and
projection act part-wise, so :class:`DualThreat` composes two region threats of
:func:`~stages.attacks.threats.make_threat` and :func:`dual_pgd` runs the one PGD loop of
:func:`stages.attacks.pgd.pgd` over it: no second attack loop.

Relation to PGD. In l_∞ the constraint set is a box (eps_F on F, eps_B on B), so with
eps_F = eps_B = eps and equal step sizes the dual attack *is* full-image PGD, down to the
bit for the same generator seed. In l_2 it is not: ‖δ∘F‖ ≤ eps and ‖δ∘B‖ ≤ eps allow
‖δ‖ up to √2·eps, and each part moves along its own normalised gradient, so the paper's
remark that dual attacks generalise PGD holds exactly only for l_∞. The l_2 analogue that
does hold: with eps_B = 0 the dual attack is foreground-only PGD
(:func:`~stages.attacks.pgd.localized_pgd` with ``region=F``).
"""

from __future__ import annotations

import torch
from torch import nn

from stages.attacks.pgd import pgd, summed_cross_entropy
from stages.attacks.threats import LinfThreat, Norm, Threat, make_threat
from stages.masks.regions import eps_matrix
from stages.saliency.base import SalienceModel, foreground_score
from stages.utils.layouts import (
    as_batch_masks,
    as_region,
    check_against_images,
    require_images,
    require_labels,
)


class DualThreat(Threat):
    """The dual-perturbation set {‖δ∘F‖_p ≤ eps_F, ‖δ∘B‖_p ≤ eps_B} and its part-wise moves.

    Each part is the ordinary region threat (``make_threat(norm, eps, region)``), so the
    norm-specific step (sign for l_∞, region-masked l_2-normalised gradient for l_2) and
    projection are the ones single-region PGD uses. Both parts see the same merged gradient;
    each is stepped and projected on its own, and the merged δ takes each pixel from the
    part that owns it. The supports are disjoint, so merging loses nothing.

    ``step`` is called by the PGD loop with one step length; here it is a common *factor* of
    the two part step sizes (:func:`dual_pgd` passes 1.0), which is how a loop that knows one
    step length drives two.

    Args:
        norm: "linf" or "l2", for both parts (Eq. 3 has one p).
        eps_fg, eps_bg: radii of the foreground and background balls, >= 0.
        foreground: bool (N, 1, H, W), True on F(x), N, H, W the attacked images' ((N, H, W)
            is accepted and converted); checked against the images when first used.
        step_fg, step_bg: step sizes of the two parts, in the norm's units, >= 0.
    """

    def __init__(
        self,
        norm: Norm,
        eps_fg: float,
        eps_bg: float,
        foreground: torch.Tensor,
        *,
        step_fg: float,
        step_bg: float,
    ) -> None:
        self._given = tuple(getattr(foreground, "shape", ()))
        foreground = as_region(foreground, "foreground", "DualThreat")
        for name, value in (("step_fg", step_fg), ("step_bg", step_bg)):
            if value < 0:
                raise ValueError(f"{name} must be >= 0, got {value}")
        background = ~foreground
        self.foreground = foreground
        self._fits: torch.Size | None = None
        self.fg = make_threat(norm, eps_fg, foreground)
        self.bg = make_threat(norm, eps_bg, background)
        self.step_fg = float(step_fg)
        self.step_bg = float(step_bg)
        # In l_inf the product of the two boxes is one box: start from it with one uniform
        # draw per coordinate, exactly as full-image PGD's start consumes the generator.
        self._box: LinfThreat | None = None
        if norm == "linf":
            self._box = LinfThreat(eps_matrix(foreground, eps_fg) + eps_matrix(background, eps_bg))

    def validate(self, x: torch.Tensor) -> None:
        if x.shape != self._fits:
            require_images(x, "images", "DualThreat")
            check_against_images(self.foreground, x, "foreground", "DualThreat", given=self._given)
            self._fits = x.shape

    def _merge(self, fg: torch.Tensor, bg: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        self.validate(out)
        mask = self.foreground
        if mask.device != out.device:
            mask = self.foreground = mask.to(out.device)
        return out.copy_(torch.where(mask, fg, bg))

    def random_start(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """Uniform on the product of the two balls: one box draw in l_∞; in l_2 the
        foreground's ball, then the background's (independent, hence uniform on the product;
        the foreground draw comes first, so eps_B = 0 starts exactly like foreground PGD)."""
        if self._box is not None:
            return self._box.random_start(x, generator)
        fg = self.fg.random_start(x, generator)
        bg = self.bg.random_start(x, generator)
        return self._merge(fg, bg, fg)

    def step(self, delta: torch.Tensor, grad: torch.Tensor, step_size: float) -> torch.Tensor:
        """Each part steps its own copy of δ with its own step size (the part threats work in
        place, and the l_2 one normalises the gradient restricted to its region); δ then
        takes each pixel from the part that owns it. In place, as the PGD loop expects."""
        fg = self.fg.step(delta.clone(), grad.clone(), step_size * self.step_fg)
        bg = self.bg.step(delta.clone(), grad, step_size * self.step_bg)
        return self._merge(fg, bg, delta)

    def project(self, delta: torch.Tensor) -> torch.Tensor:
        """Exact projection onto the product set: each part onto its own ball (the set is a
        product over disjoint coordinates, so the parts project independently)."""
        fg = self.fg.project(delta.clone())
        bg = self.bg.project(delta.clone())
        return self._merge(fg, bg, delta)


class _SalienceObjective(nn.Module):
    """x_adv -> L(h(x_adv), y) + λ Σ_n S(x_adv)_n as one scalar (Eq. 3, summed over the batch).

    :func:`~stages.attacks.pgd.pgd` hands ``loss_fn`` only the model's output and ``y``, but
    the salience term needs the input; wrapping the model (labels, masks and salience model
    fixed for the attack) lets the objective be the "model" and the loss the identity, so
    the one PGD loop serves. Holds the classifier as a submodule but never changes its mode.
    """

    def __init__(
        self,
        model: nn.Module,
        y: torch.Tensor,
        salience: SalienceModel,
        foreground: torch.Tensor,
        weight: float,
    ) -> None:
        super().__init__()
        self.model = model
        self.y = y
        self.salience = salience
        self.foreground = foreground
        self.weight = float(weight)

    def forward(self, x_adv: torch.Tensor) -> torch.Tensor:
        loss = summed_cross_entropy(self.model(x_adv), self.y)
        score = foreground_score(self.salience(x_adv), self.foreground)
        return loss + self.weight * score.sum()


def _objective_value(objective: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The loss for a :class:`_SalienceObjective`: its output already is the objective."""
    return objective


def dual_pgd(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    foreground: torch.Tensor,
    *,
    norm: Norm,
    eps_fg: float,
    eps_bg: float,
    step_fg: float,
    step_bg: float,
    steps: int,
    random_start: bool,
    generator: torch.Generator | None = None,
    salience: SalienceModel | None = None,
    salience_weight: float = 0.0,
) -> torch.Tensor:
    """Dual-perturbation PGD (Eq. 3); returns x_adv in [0, 1].

    Each iteration: gradient of the objective at the merged x + δ; foreground and background
    parts stepped with ``step_fg`` / ``step_bg`` and each projected onto its own ball; x + δ
    clipped to [0, 1]. Everything else (random start, clipping order, gradient hygiene,
    working inside ``torch.no_grad``, never calling ``train()``/``eval()``) is
    :func:`~stages.attacks.pgd.pgd`'s, whose caller responsibilities apply.

    Args:
        model: maps (N, C, H, W) images in [0, 1] to logits; its mode is the caller's choice.
        x: clean images in [0, 1], float (N, C, H, W). Not modified.
        y: labels, integer (N,).
        foreground: bool (N, 1, H, W), True on the object (F(x)); B(x) is its complement.
            From segmentation, or :func:`stages.saliency.threshold_mask` (§3.3). The per-image
            (N, H, W) layout is accepted too and converted to (N, 1, H, W).
        norm: "linf" or "l2".
        eps_fg, eps_bg: eps_F and eps_B (paper, l_2: 2.0 and 20.0 on 224-px ImageNet-10;
            l_∞: 4/255 and 20/255).
        step_fg, step_bg: absolute step lengths of the two parts in the norm.
        steps: number of iterations (0 returns the random start, or x).
        random_start: start uniformly in the constraint set (the paper's random starts).
        generator: source of the random start, as in :func:`~stages.attacks.pgd.pgd`.
        salience: the model behind S (DeepGaze II in the paper); required when
            ``salience_weight`` is not 0. Like ``model``, its mode is the caller's choice.
        salience_weight: λ. The objective is the summed cross-entropy plus λ times the sum
            of the images' foreground scores; 0 (the paper's AT-Dual training setting) is
            plain dual PGD and never evaluates ``salience``.
    """
    if salience_weight != 0.0 and salience is None:
        raise ValueError(f"salience_weight={salience_weight} needs a salience model (salience=None)")
    require_images(x, "x", "dual_pgd")
    require_labels(y, x, "y", "dual_pgd")
    fg = as_batch_masks(foreground, x, "foreground", "dual_pgd").to(x.device)
    threat = DualThreat(norm, eps_fg, eps_bg, fg, step_fg=step_fg, step_bg=step_bg)
    if salience_weight == 0.0 or salience is None:
        attacked, loss_fn = model, summed_cross_entropy
    else:
        attacked = _SalienceObjective(model, y, salience, fg, salience_weight)
        loss_fn = _objective_value
    return pgd(
        attacked,
        x,
        y,
        threat,
        steps=steps,
        step_size=1.0,
        random_start=random_start,
        generator=generator,
        loss_fn=loss_fn,
    )
