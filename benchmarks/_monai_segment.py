"""A plain MONAI/torch segmentation script: the baseline that `radseg segment --backend onnx` is timed against.

    python benchmarks/_monai_segment.py MODEL.zip INPUT_DIR OUTPUT_DIR THREADS

What a MONAI user writes for a radseg model bundle without radseg: read model.json and
weights.pt from the zip, build ``monai.networks.nets.UNet``, and per image (PIL) fit it
into the model's grid keeping the aspect ratio (``F.interpolate``, antialiased when
shrinking), percentile clip + z-score, ``monai.inferers.sliding_window_inference`` (Gaussian,
overlap 0.5, 2 windows a batch), softmax, resize back, argmax, write a PNG label map. The same
steps as radseg's model preprocessing, so the labels can be compared pixel for pixel.
"""

from __future__ import annotations

import io
import json
import sys
import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from monai.inferers import sliding_window_inference
from monai.networks.nets import UNet
from PIL import Image, ImageOps


def main() -> None:
    model, source, out, threads = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4])
    torch.set_num_threads(threads)
    with zipfile.ZipFile(model) as archive:
        config = json.loads(archive.read("model.json"))
        state = torch.load(io.BytesIO(archive.read("weights.pt")), map_location="cpu", weights_only=True)
    arch, pre = config["architecture"], config["preprocessing"]
    assert arch["name"] == "unet" and pre["mode"] == "fit" and config["head"] == "multiclass"
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in arch["kwargs"].items()}
    net = UNet(spatial_dims=2, in_channels=1, out_channels=arch["out_channels"], **kwargs)
    net.load_state_dict(state)
    net.eval()
    size, patch = np.array(pre["size"]), tuple(pre["patch_size"])
    values = np.array([0] + [label["value"] for label in config["labels"]], np.uint8)
    out.mkdir(parents=True, exist_ok=True)
    for path in sorted(source.iterdir()):
        with Image.open(path) as pil:
            array = np.array(ImageOps.exif_transpose(pil))
        grey = (array.mean(axis=-1) if array.ndim == 3 else array).astype(np.float32)
        shape = np.array(grey.shape)
        resized = np.maximum(1, np.minimum(size, np.rint(shape * min(size / shape)))).astype(int)
        pad = (size - resized) // 2
        x = F.interpolate(torch.from_numpy(grey)[None, None], size=tuple(int(r) for r in resized), mode="bilinear",
                          align_corners=False, antialias=bool((resized < shape).any()))[0, 0].numpy()
        low, high = np.percentile(x, pre["percentiles"])
        x = np.clip(x, low, high)
        x = (x - x.mean()) / (x.std() if x.std() > 1e-6 else 1.0)
        grid = np.full(tuple(size), x.min(), np.float32)
        box = tuple(slice(p, p + r) for p, r in zip(pad, resized))
        grid[box] = x
        with torch.inference_mode():
            logits = sliding_window_inference(torch.from_numpy(grid)[None, None], patch, 2, net, overlap=0.5,
                                              mode="gaussian")
            probs = torch.softmax(torch.as_tensor(logits), 1)[0][(slice(None), *box)]
            back = F.interpolate(probs[None], size=tuple(int(s) for s in shape), mode="bilinear", align_corners=False)[0]
            labels = values[back.argmax(0).numpy()]
        Image.fromarray(labels).save(out / f"{path.stem}.png")


if __name__ == "__main__":
    main()
