"""``Case``: one subject's images, labels and metadata, the carrier every workflow passes around.

As TorchIO's ``Subject``: images and labels are keyed by role (``"image"``, ``"labels"``,
``"ct"``, ``"bone"`` ...) and may be given lazily, as a zero-argument loader that is called
on first access and cached, so a prepared dataset of thousands of cases opens in
milliseconds and a case costs memory only while it is used (:meth:`Case.unload` frees it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from radseg.image import Image

__all__ = ["Case", "LazyImages"]

Loader = Callable[[], Image]


class LazyImages(MutableMapping):
    """Role -> :class:`Image`; a value may be a loader, called once on first access."""

    def __init__(self, items: dict[str, Union[Image, Loader]] | None = None):
        self._items: dict[str, Union[Image, Loader]] = {}
        self._loaders: dict[str, Loader] = {}
        for key, value in (items or {}).items():
            self[key] = value

    def __getitem__(self, key: str) -> Image:
        value = self._items[key]
        if not isinstance(value, Image):
            value = value()
            self._items[key] = value
        return value

    def __setitem__(self, key: str, value: Union[Image, Loader]) -> None:
        if not isinstance(value, Image) and not callable(value):
            raise TypeError(f"{key!r}: expected an Image or a loader, got {type(value).__name__}")
        self._items[key] = value
        if not isinstance(value, Image):
            self._loaders[key] = value
        else:
            self._loaders.pop(key, None)

    def __delitem__(self, key: str) -> None:
        del self._items[key]
        self._loaders.pop(key, None)

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def cache(self, key: str, image: Image) -> None:
        """Hold ``image`` for ``key`` until :meth:`unload`, keeping the key's loader (for roles read together)."""
        self._items[key] = image

    def is_loaded(self, key: str) -> bool:
        return isinstance(self._items[key], Image)

    def unload(self) -> None:
        """Forget loaded arrays that can be loaded again (in-memory images stay)."""
        self._items.update(self._loaders)

    def __repr__(self) -> str:
        state = {k: ("loaded" if self.is_loaded(k) else "lazy") for k in self._items}
        return f"LazyImages({state})"


@dataclass(eq=False)
class Case:
    """One subject's images, label maps and metadata (sex, age, site ...).

    ``images`` and ``labels`` map roles to :class:`Image` (or loaders); ``label_names`` maps
    label values to class names (for a multi-label mask: channel ``k`` is value ``k + 1``);
    ``subject`` holds patient-level facts (``patient``, ``sex``, ``age_group`` ...),
    ``metadata`` anything else; ``split`` is the dataset split the case belongs to
    (``None`` when the dataset has none); ``sources`` names the files behind the roles.
    """

    case_id: str
    images: MutableMapping = field(default_factory=LazyImages)
    labels: MutableMapping = field(default_factory=LazyImages)
    subject: dict[str, Any] = field(default_factory=dict)
    label_names: dict[int, str] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    split: str | None = None
    sources: dict[str, Path] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.images, LazyImages):
            self.images = LazyImages(dict(self.images))
        if not isinstance(self.labels, LazyImages):
            self.labels = LazyImages(dict(self.labels))

    @property
    def image(self) -> Image:
        """The case's single image (error when there are several or none)."""
        return self._single(self.images, "images")

    @property
    def label(self) -> Image:
        """The case's single label map or multi-label mask (error when there are several or none)."""
        return self._single(self.labels, "label maps")

    @property
    def patient(self) -> str | None:
        return self.subject.get("patient")

    def unload(self) -> None:
        """Free the arrays of lazily loaded images and labels (they reload on next access)."""
        self.images.unload()
        self.labels.unload()

    def _single(self, mapping: LazyImages, what: str) -> Image:
        if len(mapping) != 1:
            raise ValueError(f"case {self.case_id!r} has {len(mapping)} {what} "
                             f"({', '.join(mapping) or 'none'}); pick one by key")
        return mapping[next(iter(mapping))]
