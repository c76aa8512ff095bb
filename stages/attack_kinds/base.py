"""The interface every attack kind implements: what the pipeline asks of ``kind: <name>``.

Training asks one thing (adversarial examples of a batch, :meth:`AttackKind.perturb`, and
whether the kind may train at all); evaluation asks for a whole evaluation record
(:meth:`AttackKind.evaluate`). Most kinds are evaluated batch by batch, each image keeping the
worst of the kind's random starts (stages.evaluation.robustness.evaluate_batches), and only
say how often to start, which pixels they change and what extra per-image records they keep;
a kind evaluated another way (DE's per-image search) overrides :meth:`AttackKind.evaluate`.

Nothing here imports evaluation code (stages/evaluation): training imports the kinds, and a
change to how models are evaluated must not retrain them (workflow.code_deps computes each
job's code from its imports). The batch-wise evaluation is run by
:mod:`stages.attack_kinds.evaluate`, which only the evaluate stage imports.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import torch
from torch import nn

from stages.utils.errors import ConfigError

if TYPE_CHECKING:
    from stages.attacks.de_forward import DEForward
    from stages.config import AttackSpec
    from stages.data.processed import ProcessedSplit


class ExtraRecords(Protocol):
    """Per-image quantities a kind adds to a batch-wise evaluation record (e.g. a dual attack's
    foreground scores), gathered batch by batch."""

    def add(self, x: torch.Tensor, x_adv: torch.Tensor, masks: torch.Tensor | None) -> None:
        """Take one batch: clean images ``x`` as the model sees them, the kept adversarial
        ``x_adv``, the batch's foreground masks (or None)."""

    def per_image(self) -> dict[str, list[float]]:
        """Per-image floats by record key, in the split's order (rounded like the losses)."""

    def summary(self, samples: int) -> dict[str, Any]:
        """Top-level record entries over all ``samples`` images."""


class AttackKind(ABC):
    """One kind of attack (params.yaml ``attacks.<name>.kind``), registered by its ``name``
    in stages.attack_kinds. Stateless: every method takes the attack's spec."""

    name: ClassVar[str]
    """The kind as params.yaml spells it."""

    can_train: ClassVar[bool]
    """Whether an attack of this kind may be a model's ``train_attack``."""

    evaluation_reads: ClassVar[tuple[str, ...]] = ()
    """The params.yaml keys (dotted) its evaluation reads besides the attack's own entry and
    the usual evaluation settings: the plan puts them in the job files of this kind's
    evaluations only, so changing one reruns exactly those (workflow.plan)."""

    def check(self, spec: AttackSpec) -> None:
        """Refuse, with a ConfigError naming the params key, a spec this kind could not run:
        called for every attack when the plan is made, so a bad value stops before any job
        starts (workflow.plan). By default every spec the schema admits is runnable."""
        return None

    @abstractmethod
    def perturb(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        masks: torch.Tensor | None,
        spec: AttackSpec,
        box_fraction: float,
        generator: torch.Generator | None,
        *,
        model_input: str = "natural",
    ) -> torch.Tensor:
        """Adversarial examples of one batch ``x`` (float (N, C, H, W) in [0, 1], as the
        model sees it) with labels ``y``.

        ``masks`` are the batch's foreground masks (bool (N, 1, H, W)) or None when the
        dataset has none; ``box_fraction`` sizes the centre box of box regions; random
        numbers come from ``generator``. A model that sees only the foreground
        (``model_input: foreground``, x already x∘F) can only be attacked there.
        """

    @abstractmethod
    def effective_region(self, spec: AttackSpec, model_input: str) -> str | None:
        """The pixels the attack may change on a model with input ``model_input``, in words
        (the record's ``effective_region``; None: no perturbation at all)."""

    def restarts(self, spec: AttackSpec) -> int:
        """Random starts per image, as the evaluation record reports them."""
        return 1

    def evaluation_starts(self, spec: AttackSpec) -> int:
        """How often a batch-wise evaluation perturbs each batch, each image keeping its worst
        start: 1 unless the evaluation makes the restarts (an attack that restarts inside
        itself, as AutoAttack, still reports its restarts in :meth:`restarts`)."""
        return 1

    def extra_records(self, spec: AttackSpec, device: torch.device) -> ExtraRecords | None:
        """A fresh gatherer of this kind's extra per-image records for one batch-wise
        evaluation on ``device``; None: the kind keeps only the usual ones."""
        return None

    def evaluate(
        self,
        model: nn.Module,
        split: ProcessedSplit,
        spec: AttackSpec,
        *,
        box_fraction: float,
        batch_size: int,
        seed: int,
        device: torch.device,
        model_input: str,
        progress: bool,
        de_forward: DEForward | None,
    ) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """(metrics, throughput) of ``model`` on ``split`` under ``spec`` for a kind evaluated
        its own way; None (the default): batch by batch, each image keeping the worst of
        :meth:`evaluation_starts` starts (stages.evaluation.robustness.evaluate_batches, which
        :func:`stages.attack_kinds.evaluate.evaluate` runs). ``de_forward`` is how a DE search
        scores its candidates on this device."""
        return None


def config_or_error(spec: AttackSpec, make: Callable[[], Any]) -> Any:
    """``make()``, its ValueError (which names the setting first, as DEConfig's do) turned
    into a ConfigError under ``attacks.<name>``."""
    try:
        return make()
    except ValueError as exc:
        raise ConfigError(f"attacks.{spec.name}.{exc}") from None


def check_l2_budgets(spec: AttackSpec, x: torch.Tensor) -> None:
    """Stop an l2 attack whose budget exceeds sqrt(C*H*W), the largest l2 distance between two
    images in [0, 1] of the batch's shape: such an attack is unbounded, almost surely a budget
    meant per pixel or for another image size. Checked here, where the shape is known (the
    l_inf counterpart, a budget above 1, is checked with params.yaml)."""
    if spec.norm != "l2":
        return
    diameter = float(x[0].numel()) ** 0.5
    for key in ("eps", "eps_foreground", "eps_background"):
        eps = getattr(spec, key)
        if eps > diameter:
            raise ConfigError(
                f"attacks.{spec.name}.{key}: an l2 budget of {eps:g} exceeds {diameter:.2f}, the "
                f"largest l2 distance between two images of shape {tuple(x.shape[1:])} in [0, 1], "
                f"so the attack is unbounded; an l2 budget is the norm over all pixels and "
                f"channels together (e.g. 0.5 for CIFAR-10, 2 for MNIST): lower it"
            )
