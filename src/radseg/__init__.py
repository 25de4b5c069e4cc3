"""radseg: segmentation of radiographs and CT, from clinical files to clinical outputs.

``Image`` and ``Case`` are imported on first use (PEP 562), so ``import radseg`` and every
``radseg.*`` module that needs neither (the command line, ``radseg version``) start without numpy.
"""

from typing import TYPE_CHECKING

__version__ = "0.1.0"
__all__ = ["Image", "Case", "__version__"]

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from radseg.case import Case
    from radseg.image import Image


def __getattr__(name: str):
    if name == "Case":
        from radseg.case import Case

        return Case
    if name == "Image":
        from radseg.image import Image

        return Image
    raise AttributeError(f"module 'radseg' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
