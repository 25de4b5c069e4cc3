"""Several trained networks of one recipe as one model: their class probabilities averaged.

nnU-Net ships the five networks of its cross-validation as one model and averages their
softmax; averaging the probabilities (not the weights) is what makes an ensemble more than
its best member. Here the members are networks of the same architecture, labels and
preprocessing (runs of one recipe: other seeds, folds, continued or hard-negative runs), each with
its own options (a wider and a narrower U-Net may be members: the bundle then keeps each member's).

:class:`~radseg.models.ensemble_network.EnsembleNetwork` returns the members' logits side by
side; the predictor blends sliding windows channel by channel and then averages the members'
probabilities (:func:`radseg.models.grid.activate`), so the ensemble's output is exactly the mean
of its members' outputs, window blending and flip TTA included, on torch and ONNX alike.

:func:`combine_bundles` checks that the members fit together and builds the bundle;
``radseg models ensemble`` is its command.
"""

from __future__ import annotations

from typing import Any, Sequence

from radseg.errors import RadsegError
from radseg.models.ensemble_network import EnsembleNetwork, member_prefix
from radseg.models.hardware import trained_on

__all__ = ["EnsembleNetwork", "combine_bundles", "member_prefix"]


_MUST_MATCH = ("architecture", "spatial_dims", "in_channels", "head", "class_names", "class_values",
               "mirror_pairs", "postprocessing")


#: Manifest fields downstream code reads (segment/serve quality gate, model card, licence and credit):
#: carried when the members that have one agree (a licence or credit follows the weights), refused when they differ.
_CARRIED = ("quality_check", "intended_use", "license", "data_credit")


def _describe(bundle) -> str:
    return str(bundle.path or "a member")


def _networks(bundle) -> list[tuple[dict, dict, dict]]:
    """``[(state_dict, provenance record, network options)]``: one per network (an ensemble gives each of its members)."""
    weights = bundle.load_weights()
    if weights is None:
        raise RadsegError(f"{_describe(bundle)}: holds no weights")
    if bundle.members == 1:
        return [(weights, _member_record(bundle), dict(bundle.arch_kwargs))]
    inner = list(((bundle.manifest or {}).get("ensemble") or {}).get("members") or [])
    if len(inner) != bundle.members:
        inner = [_member_record(bundle)] * bundle.members
    options = bundle.member_kwargs or [dict(bundle.arch_kwargs)] * bundle.members
    return [({k[len(member_prefix(i)):]: v for k, v in weights.items() if k.startswith(member_prefix(i))}, inner[i],
             dict(options[i])) for i in range(bundle.members)]


def _fingerprint(state: dict) -> str:
    import hashlib

    digest = hashlib.sha256()
    for key in sorted(state):
        digest.update(key.encode())
        digest.update(state[key].detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def combine_bundles(bundles: Sequence[Any], *, summary: str | None = None):
    """One :class:`~radseg.models.bundle.ModelBundle` averaging the probabilities of ``bundles``.

    Members must agree on everything but their weights and network options: architecture, head,
    labels, left/right pairs, post-processing, preprocessing (the grid and intensity scaling),
    and the manifest fields in :data:`_CARRIED` (where given: a member without one takes the
    others'). A member that is an ensemble already contributes its networks; the same network
    twice is refused (it would count double). The manifest lists each network (path, weights digest, data hash, what it was initialised from, training summary);
    the held-out cases are kept only when every member held out the same ones (else ``--split
    holdout`` is refused: some member trained on them). Operating points are not carried over: the
    ensemble's scores are its own, so choose one on the holdout again (``evaluate-detection --split
    holdout --save-operating-point``).
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
                                  "same architecture for the same labels")
        differ = other.preprocessing.differences(first.preprocessing)
        if differ:
            raise RadsegError(f"{_describe(other)}: its preprocessing differs from {_describe(first)}'s ("
                              + ", ".join(f"{k} {a!r} vs {b!r}" for k, (a, b) in differ.items())
                              + "): the members must see the same grid and intensities")
    carried = {}
    for key in _CARRIED:  # a member without the field does not conflict (e.g. a run not yet given its credit)
        given = [(b, (b.manifest or {}).get(key)) for b in bundles if (b.manifest or {}).get(key) is not None]
        odd = next(((b, v) for b, v in given if v != given[0][1]), None)
        if odd is not None:
            raise RadsegError(f"the members' {key.replace('_', ' ')} differ ({_describe(odd[0])}: {odd[1]!r}, "
                              f"{_describe(given[0][0])}: {given[0][1]!r}): an ensemble carries one")
        if given:
            carried[key] = given[0][1]
    state: dict[str, Any] = {}
    records, seen, options = [], {}, []
    for bundle in bundles:
        for network, record, kwargs in _networks(bundle):
            fingerprint = _fingerprint(network)
            if fingerprint in seen:
                raise RadsegError(f"{_describe(bundle)}: holds a network that {seen[fingerprint]} holds too; the same "
                                  "network twice would count double")
            seen[fingerprint] = _describe(bundle)
            prefix = member_prefix(len(records))
            state.update({prefix + k: v for k, v in network.items()})
            records.append(record)
            options.append(kwargs)
    # members of one architecture with other options (widths) keep their own; the same everywhere: one set
    mixed = any(kwargs != options[0] for kwargs in options)
    data = _shared_data(bundles)
    manifest = {**carried, "summary": summary or f"ensemble of {len(records)} networks (mean class probability)",
                "ensemble": {"members": records, "combine": "mean of the members' class probabilities"},
                "config": _shared_config(bundles, data), "data": data}
    return ModelBundle(architecture=first.architecture, spatial_dims=first.spatial_dims, in_channels=first.in_channels,
                       arch_kwargs=dict(first.arch_kwargs), head=first.head, class_values=list(first.class_values),
                       class_names=list(first.class_names), preprocessing=first.preprocessing,
                       postprocessing=dict(first.postprocessing), mirror_pairs=list(first.mirror_pairs),
                       manifest=manifest, state_dict=state, members=len(records),
                       member_kwargs=options if mixed else None)


def _member_record(bundle) -> dict[str, Any]:
    manifest = bundle.manifest or {}
    return {"path": str(bundle.path) if bundle.path else None, "weights_sha256": bundle.digest,
            "summary": manifest.get("summary"), "data_hash": (manifest.get("data") or {}).get("data_hash"),
            "initialised_from": (manifest.get("config") or {}).get("init"), "metrics": manifest.get("metrics"),
            "trained_on": trained_on(manifest)}


def _shared_config(bundles, data: dict[str, Any]) -> dict[str, Any]:
    """The training options every member shares (flip_lr decides whether flip TTA is allowed; holdout
    whether the held-out cases can be scored)."""
    configs = [(b.manifest or {}).get("config") or {} for b in bundles]
    keys = set(configs[0]).intersection(*configs[1:])
    shared = {k: configs[0][k] for k in sorted(keys) if all(c[k] == configs[0][k] for c in configs)}
    if data.get("val_cases") is None:
        shared.pop("holdout", None)
    if any(c.get("flip_lr") is False for c in configs):
        shared["flip_lr"] = False  # one member never saw a mirrored image: no flip TTA for the ensemble
    return shared


def _shared_data(bundles) -> dict[str, Any]:
    """Held-out cases (when every member held out the same ones) and every case some member trained on
    (evaluate-detection refuses a val/test split holding one of those)."""
    held = [sorted(((b.manifest or {}).get("data") or {}).get("val_cases") or []) for b in bundles]
    holdouts = [bool(((b.manifest or {}).get("config") or {}).get("holdout")) for b in bundles]
    trained = sorted({c for b in bundles for c in ((b.manifest or {}).get("data") or {}).get("train_cases") or []})
    out = {"train_cases": trained} if trained else {}
    if all(holdouts) and held[0] and all(h == held[0] for h in held):
        return {"val_cases": held[0], **out}
    if any(holdouts):  # said in the manifest, so --split holdout can tell why it is refused
        return {"holdout_dropped": "the members did not all hold out the same training cases", **out}
    return out
