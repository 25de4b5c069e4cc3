"""radseg: segmentation of radiographs and CT, from clinical files to clinical outputs."""

from radseg.case import Case
from radseg.image import Image

__version__ = "0.1.0"
__all__ = ["Image", "Case", "__version__"]
