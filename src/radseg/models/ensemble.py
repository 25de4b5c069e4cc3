"""Several trained networks of one recipe as one model: their class probabilities averaged.

nnU-Net ships the five networks of its cross-validation as one model and averages their
softmax; averaging the probabilities (not the weights) is what makes an ensemble more than
its best member. Here the members are networks of the same architecture, labels and
preprocessing (runs of one recipe: other seeds, folds, continued or hard-negative runs).

:class:`~radseg.models.probability_ensemble.ProbabilityEnsemble` is an ``nn.Module`` whose output is the *logit of the mean
probability*: ``log(mean_k softmax(z_k))`` for a multi-class head (softmax of it gives the
mean exactly), ``logit(mean_k sigmoid(z_k))`` for a multi-label head. Written with
log-sum-exp, so it is exact and does not overflow. Everything downstream of a network
(sliding window, flip TTA, ONNX export, the ONNX Runtime forward) therefore runs an
ensemble unchanged.

:func:`combine_bundles` checks that the members fit together and builds the bundle;
``radseg models ensemble`` is its command.
"""

from __future__ import annotations

from typing import Any, Sequence

from radseg.errors import RadsegError
from radseg.models.probability_ensemble import ProbabilityEnsemble, member_prefix

__all__ = ["ProbabilityEnsemble", "combine_bundles", "member_prefix"]


_MUST_MATCH = ("architecture", "spatial_dims", "in_channels", "arch_kwargs", "head", "class_names", "class_values",
               "mirror_pairs", "postprocessing")


def _describe(bundle) -> str:
    return str(bundle.path or "a member")


def combine_bundles(bundles: Sequence[Any], *, summary: str | None = None):
    """One :class:`~radseg.models.bundle.ModelBundle` averaging the probabilities of ``bundles``.

    Members must agree on everything but their weights: architecture and its options, head,
    labels, left/right pairs, post-processing, preprocessing (the grid and intensity scaling).
    A member that is an ensemble already contributes its networks. The manifest lists each
    member (path, weights digest, training summary); the held-out cases are kept only when every
    member held out the same ones (else ``--split holdout`` is refused: some member trained on
    them). Operating points are not carried over: the ensemble's scores are its own, so choose
    one on the holdout again (``evaluate-detection --split holdout --save-operating-point``).
    """
    from radseg.models.bundle import ModelBundle

    if len(bundles) < 2:
        raise RadsegError("an ensemble needs two or more models")
    first = bundles[0]
    for other in bundles[1:]:
        for name in _MUST_MATCH:
            if getattr(other, name) != getattr(first, name):
                raise RadsegError(f"{_describe(other)}: {name.replace('_', ' ')} {getattr(other, name)!r}, but "
                                  f"{_describe(first)}: {getattr(first, name)!r}; members of an ensemble must be the "
                                  "same network for the same labels")
        theirs, ours = other.preprocessing.to_dict(), first.preprocessing.to_dict()
        differ = {k: (theirs.get(k), ours.get(k)) for k in sorted(set(theirs) | set(ours)) if theirs.get(k) != ours.get(k)}
        if differ:
            raise RadsegError(f"{_describe(other)}: its preprocessing differs from {_describe(first)}'s ("
                              + ", ".join(f"{k} {a!r} vs {b!r}" for k, (a, b) in differ.items())
                              + "): the members must see the same grid and intensities")
    state: dict[str, Any] = {}
    members_info = []
    for bundle in bundles:
        weights = bundle.load_weights()
        if weights is None:
            raise RadsegError(f"{_describe(bundle)}: holds no weights")
        networks = [{k[len(member_prefix(i)):]: v for k, v in weights.items() if k.startswith(member_prefix(i))}
                    for i in range(bundle.members)] if bundle.members > 1 else [weights]
        for network in networks:
            prefix = member_prefix(len(members_info))
            state.update({prefix + k: v for k, v in network.items()})
            members_info.append(_member_record(bundle))
    manifest = {"summary": summary or f"ensemble of {len(members_info)} networks (mean class probability)",
                "ensemble": {"members": members_info, "combine": "mean of the members' class probabilities"},
                "config": _shared_config(bundles), "data": _shared_data(bundles)}
    return ModelBundle(architecture=first.architecture, spatial_dims=first.spatial_dims, in_channels=first.in_channels,
                       arch_kwargs=dict(first.arch_kwargs), head=first.head, class_values=list(first.class_values),
                       class_names=list(first.class_names), preprocessing=first.preprocessing,
                       postprocessing=dict(first.postprocessing), mirror_pairs=list(first.mirror_pairs),
                       manifest=manifest, state_dict=state, members=len(members_info))


def _member_record(bundle) -> dict[str, Any]:
    manifest = bundle.manifest or {}
    return {"path": str(bundle.path) if bundle.path else None, "weights_sha256": bundle.digest,
            "summary": manifest.get("summary"), "data_hash": (manifest.get("data") or {}).get("hash"),
            "metrics": manifest.get("metrics")}


def _shared_config(bundles) -> dict[str, Any]:
    """The training options every member shares (flip_lr decides whether flip TTA is allowed; holdout
    whether the held-out cases can be scored)."""
    configs = [(b.manifest or {}).get("config") or {} for b in bundles]
    keys = set(configs[0]).intersection(*configs[1:])
    shared = {k: configs[0][k] for k in sorted(keys) if all(c[k] == configs[0][k] for c in configs)}
    if _shared_data(bundles).get("val_cases") is None:
        shared.pop("holdout", None)
    if any(c.get("flip_lr") is False for c in configs):
        shared["flip_lr"] = False  # one member never saw a mirrored image: no flip TTA for the ensemble
    return shared


def _shared_data(bundles) -> dict[str, Any]:
    held = [sorted((b.manifest or {}).get("data", {}).get("val_cases") or []) for b in bundles]
    holdouts = [bool(((b.manifest or {}).get("config") or {}).get("holdout")) for b in bundles]
    if all(holdouts) and held[0] and all(h == held[0] for h in held):
        return {"val_cases": held[0]}
    return {}
