"""AutoAttack: the strong reference robust accuracy for full-image l_inf / l_2 cells.

Croce & Hein, *Reliable evaluation of adversarial robustness with an ensemble of diverse
parameter-free attacks* (ICML 2020), run four complementary attacks in sequence: APGD with
cross-entropy (APGD-CE), targeted APGD on the DLR loss (APGD-T), the targeted Fast Adaptive
Boundary attack (FAB-T) and the black-box Square attack. An image counts as robust only if
all of them fail, so the ensemble's robust accuracy is an upper bound that is much tighter
than a single PGD's; the robustness matrix uses it as the reference for the whole-image
cells, against which the localised PGD numbers can be judged.

The individual attacks are torchattacks' ports of the authors' code. The ensemble is built
here rather than with ``torchattacks.AutoAttack`` so that the attack list, the iteration and
query budgets and the number of target classes come from :class:`AutoAttackConfig` (the
wrapper hard-codes them). It runs as the reference implementation does: each attack only
sees the images that are still correctly classified, and an image keeps the first
adversarial example found for it.

Model state: the attacks run the model in eval mode (torchattacks' default, and what
AutoAttack assumes); every module's train/eval flag and every parameter's
``requires_grad`` are restored afterwards, and no gradient is left in the parameters'
``.grad`` (FAB back-propagates through the model with ``backward``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import torch
from torch import nn

from stages.utils.layouts import require_images, require_labels

if TYPE_CHECKING:
    import torchattacks

AttackName = Literal["apgd-ce", "apgd-dlr", "apgd-t", "fab", "fab-t", "square"]
ATTACK_NAMES: tuple[str, ...] = ("apgd-ce", "apgd-dlr", "apgd-t", "fab", "fab-t", "square")
STANDARD_ATTACKS: tuple[str, ...] = ("apgd-ce", "apgd-t", "fab-t", "square")
# AutoAttack's "rand" version (for randomised defences) runs only these two, with EOT.
RAND_ATTACKS: tuple[str, ...] = ("apgd-ce", "apgd-dlr")
VERSIONS: tuple[str, ...] = ("standard", "rand")
NORMS: tuple[str, ...] = ("linf", "l2")

_TORCHATTACKS_NORM = {"linf": "Linf", "l2": "L2"}
# Expectation over transformation in the "rand" version: 20 gradient samples per APGD step
# (AutoAttack and torchattacks both use 20).
_RAND_EOT_ITER = 20
# The DLR losses divide by differences of the sorted logits: the untargeted one uses the
# third largest logit, the targeted one the fourth.
_MIN_CLASSES = {"apgd-dlr": 3, "apgd-t": 4}


@dataclass(frozen=True)
class AutoAttackConfig:
    """Settings of the ensemble; the defaults are AutoAttack's "standard" version.

    Attributes:
        norm: "linf" or "l2" (whole-image ball of radius ``eps``).
        eps: radius, >= 0; 0 makes :func:`autoattack` a no-op.
        version: "standard", or "rand" for randomised defences: every APGD attack then
            averages its gradient over 20 samples (EOT). The "rand" version's attack list is
            :data:`RAND_ATTACKS`; pass it as ``attacks`` to run that version exactly.
        attacks: which attacks to run, in this order; names from :data:`ATTACK_NAMES`
            ("apgd-dlr" and untargeted "fab" are AutoAttack's "plus" extras).
        steps: iterations of every APGD and FAB run (standard: 100).
        n_queries: queries of Square per restart (standard: 5000).
        target_classes: target classes tried by APGD-T and FAB-T, the most likely wrong
            classes first (standard: 9); capped at ``num_classes - 1``.
        restarts: torchattacks' ``n_restarts`` of every attack (standard: 1 for all). For
            APGD-T and FAB-T it counts restarts *per target class*; restarts after the first
            start from random points, and each only attacks images not yet broken.
    """

    norm: Literal["linf", "l2"]
    eps: float
    version: Literal["standard", "rand"] = "standard"
    attacks: tuple[str, ...] = STANDARD_ATTACKS
    steps: int = 100
    n_queries: int = 5000
    target_classes: int = 9
    restarts: int = 1

    def __post_init__(self) -> None:
        # Checked at construction so a bad cell of the matrix fails before any compute.
        if self.norm not in NORMS:
            raise ValueError(f"unknown norm {self.norm!r}; valid norms are: {', '.join(NORMS)}")
        if self.version not in VERSIONS:
            raise ValueError(
                f"unknown AutoAttack version {self.version!r}; valid versions are: {', '.join(VERSIONS)}"
            )
        if not self.eps >= 0:  # also rejects NaN
            raise ValueError(f"eps must be >= 0, got {self.eps}")
        if not self.attacks:
            raise ValueError("attacks must name at least one attack")
        for name in self.attacks:
            if name not in ATTACK_NAMES:
                raise ValueError(
                    f"unknown AutoAttack attack {name!r}; valid attacks are: {', '.join(ATTACK_NAMES)}"
                )
        if len(set(self.attacks)) != len(self.attacks):
            raise ValueError(f"attacks must not repeat a name, got {self.attacks}")
        for field, value in (
            ("steps", self.steps),
            ("n_queries", self.n_queries),
            ("target_classes", self.target_classes),
            ("restarts", self.restarts),
        ):
            if value < 1:
                raise ValueError(f"{field} must be >= 1, got {value}")


def _build(
    name: str, model: nn.Module, config: AutoAttackConfig, num_classes: int, seed: int
) -> torchattacks.attack.Attack:
    """The torchattacks attack for ``name``, with ``config``'s budgets."""
    # Imported here: torchattacks loads scipy.stats (about 2 s), which every other training and
    # evaluation job would pay at start-up.
    import torchattacks

    norm = _TORCHATTACKS_NORM[config.norm]
    eot_iter = _RAND_EOT_ITER if config.version == "rand" else 1
    # torchattacks' targeted attacks try n_classes - 1 targets: the 2nd, 3rd, ... most likely
    # classes. More than num_classes - 1 would index past the logits.
    n_classes = min(config.target_classes, num_classes - 1) + 1
    common = {"norm": norm, "eps": config.eps, "seed": seed, "verbose": False}
    if name in ("apgd-ce", "apgd-dlr"):
        return torchattacks.APGD(
            model,
            steps=config.steps,
            n_restarts=config.restarts,
            loss="ce" if name == "apgd-ce" else "dlr",
            eot_iter=eot_iter,
            **common,
        )
    if name == "apgd-t":
        return torchattacks.APGDT(
            model,
            steps=config.steps,
            n_restarts=config.restarts,
            eot_iter=eot_iter,
            n_classes=n_classes,
            **common,
        )
    if name in ("fab", "fab-t"):
        return torchattacks.FAB(
            model,
            steps=config.steps,
            n_restarts=config.restarts,
            multi_targeted=name == "fab-t",
            n_classes=n_classes,
            **common,
        )
    if name == "square":
        return torchattacks.Square(model, n_queries=config.n_queries, n_restarts=config.restarts, **common)
    raise ValueError(f"unknown AutoAttack attack {name!r}; valid attacks are: {', '.join(ATTACK_NAMES)}")


def _project(x: torch.Tensor, x_adv: torch.Tensor, norm: str, eps: float) -> torch.Tensor:
    """``x_adv`` moved into the eps-ball around ``x`` and into [0, 1].

    The attacks already stay in the ball, up to float rounding; projecting once more makes
    that a guarantee of this module rather than of torchattacks' arithmetic. (An l_2 shrink
    moves towards x, which is in [0, 1], so the final clip cannot leave the ball.)
    """
    delta = x_adv - x
    if norm == "linf":
        delta = delta.clamp(-eps, eps)
    else:
        norms = torch.linalg.vector_norm(delta.flatten(1), dim=1).view(-1, *([1] * (x.dim() - 1)))
        delta = delta * (eps / norms.clamp_min(torch.finfo(x.dtype).tiny)).clamp_max(1.0)
    return (x + delta).clamp_(0.0, 1.0)


@contextmanager
def _attack_state(model: nn.Module, device: torch.device) -> Iterator[None]:
    """Eval mode, frozen parameters and a private global RNG; all restored on exit.

    Freezing the parameters (``requires_grad = False``) is what keeps FAB's ``backward``
    from accumulating into their ``.grad``; gradients w.r.t. the input are unaffected.
    torchattacks seeds the global RNGs (CPU and every CUDA device) at the start of each
    attack, so all of them are forked, not just the attack's device.
    """
    modes = [(m, m.training) for m in model.modules()]
    grads = [(p, p.requires_grad) for p in model.parameters()]
    cuda_devices: list[int] = []
    if torch.cuda.is_available() and (device.type == "cuda" or torch.cuda.is_initialized()):
        cuda_devices = list(range(torch.cuda.device_count()))
    try:
        with torch.random.fork_rng(devices=cuda_devices):
            model.eval()
            for p, _ in grads:
                p.requires_grad_(False)
            yield
    finally:
        for m, training in modes:
            m.training = training
        for p, requires_grad in grads:
            p.requires_grad_(requires_grad)


def autoattack(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    config: AutoAttackConfig,
    *,
    num_classes: int,
    seed: int,
) -> torch.Tensor:
    """Adversarial examples: for each image, the first attack of the ensemble (in order) that
    misclassifies it; images no attack breaks come back unchanged (clean). Inputs in [0, 1].

    Images the model already misclassifies are not attacked and also come back unchanged,
    so the accuracy of ``model`` on the result is AutoAttack's robust accuracy. Every
    returned image lies in ``config``'s eps-ball around its clean image and in [0, 1], and
    every changed image was checked to be misclassified.

    Args:
        model: maps (N, C, H, W) images in [0, 1] to (N, num_classes) logits, on the same
            device as ``x``. Run in eval mode; its modes and parameters are left as found.
        x: clean images, float (N, C, H, W) in [0, 1] (float32 for torchattacks). Not modified.
        y: labels, integer (N,) (int64 for torchattacks).
        config: the ensemble (:class:`AutoAttackConfig`).
        num_classes: number of classes of ``model``; APGD-T needs at least 4, APGD-DLR 3.
        seed: seed of every attack's random starts and of Square's search (each attack is
            seeded with it, as in AutoAttack); the caller's global RNG state is unchanged.
            A fixed seed gives identical output on the CPU.

    Raises:
        ValueError: bad shapes, too few classes for a requested attack, images under 5x5
            for l_2 Square, or logits of a width other than ``num_classes``.
    """
    require_images(x, "x", "autoattack")
    require_labels(y, x, "y", "autoattack")
    # FAB reshapes input gradients with .view, which fails on images stored channels-last (as
    # the processed splits are, after an NHWC -> NCHW permute).
    x = x.contiguous(memory_format=torch.contiguous_format)
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    for name in config.attacks:
        if num_classes < _MIN_CLASSES.get(name, 2):
            raise ValueError(
                f"attack {name!r} needs at least {_MIN_CLASSES[name]} classes, got num_classes={num_classes}"
            )

    if "square" in config.attacks and config.norm == "l2" and min(x.shape[-2:]) < 5:
        # torchattacks' l_2 Square starts from a grid of squares of side H // 5.
        raise ValueError(f"l_2 Square needs images of at least 5x5 pixels, got {tuple(x.shape[-2:])}")

    x = x.detach()
    y = y.detach()
    out = x.clone()
    if x.shape[0] == 0 or config.eps == 0:
        return out

    with _attack_state(model, x.device):
        with torch.no_grad():
            logits = model(x)
        if logits.shape != (x.shape[0], num_classes):
            expected = (x.shape[0], num_classes)
            raise ValueError(f"model returned logits of shape {tuple(logits.shape)}, expected {expected}")
        # Indices of the images not yet misclassified; each attack only sees these.
        remaining = (logits.argmax(dim=1) == y).nonzero().flatten()
        for name in config.attacks:
            if remaining.numel() == 0:
                break
            attack = _build(name, model, config, num_classes, seed)
            attack.set_device(x.device)  # torchattacks guesses it from the parameters otherwise
            x_rem, y_rem = x[remaining], y[remaining]
            x_adv = _project(x_rem, attack(x_rem, y_rem).detach(), config.norm, config.eps)
            with torch.no_grad():
                fooled = model(x_adv).argmax(dim=1) != y_rem
            out[remaining[fooled]] = x_adv[fooled]
            remaining = remaining[~fooled]
    return out
