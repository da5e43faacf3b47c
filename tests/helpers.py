"""Small data and storage helpers shared by the method tests (importable as ``helpers``:
``tests/`` is on pytest's ``pythonpath``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def two_gaussians(n: int, seed: int, d: int = 2, shift: float = 1.6
                  ) -> tuple[np.ndarray, np.ndarray]:
    """``n`` signal events around +shift/2 and ``n`` background events around -shift/2."""
    rng = np.random.default_rng(seed)
    X = np.vstack([rng.normal(shift / 2, 1.0, (n, d)), rng.normal(-shift / 2, 1.0, (n, d))])
    y = np.r_[np.ones(n), np.zeros(n)].astype(np.int8)
    return X, y


def three_gaussians(n: int, seed: int, d: int = 2, radius: float = 1.5
                    ) -> tuple[np.ndarray, np.ndarray]:
    """``n`` events of each of classes 0, 1, 2 around the corners of an equilateral triangle
    of the given radius in the first two features (unit width; further features are noise)."""
    rng = np.random.default_rng(seed)
    angles = np.pi / 2 + 2 * np.pi * np.arange(3) / 3
    centres = np.zeros((3, d))
    centres[:, :2] = radius * np.c_[np.cos(angles), np.sin(angles)]
    X = np.vstack([rng.normal(c, 1.0, (n, d)) for c in centres])
    y = np.repeat(np.arange(3), n).astype(np.int8)
    return X, y


def roundtrip(m, params: dict, task: str, tmp_path: Path, *, n_classes: int = 2):
    """A fitted method through its storage form (JSON meta, npz without pickle, blobs)."""
    meta, arrays, blobs = m.state()
    np.savez(tmp_path / "a.npz", **arrays)
    with np.load(tmp_path / "a.npz", allow_pickle=False) as z:
        arrays2 = {k: z[k] for k in z.files}
    return type(m).from_state(params, task, (json.loads(json.dumps(meta)), arrays2, blobs),
                              n_classes=n_classes)


PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def assert_written(paths: list[Path], stem: Path, formats=("png", "pdf")) -> None:
    """``paths`` are the files of ``stem`` in ``formats``: real, non-blank PNG and PDF files."""
    assert paths == [stem.with_name(f"{stem.name}.{f}") for f in formats]
    import matplotlib.image as mpimg

    for path in paths:
        data = path.read_bytes()
        assert len(data) > 1000
        if path.suffix == ".png":
            assert data.startswith(PNG_MAGIC)
            image = mpimg.imread(path)
            assert image.shape[0] > 300 and image.shape[1] > 300
            assert image[..., :3].std() > 0.01, "blank image"
        elif path.suffix == ".pdf":
            assert data.startswith(b"%PDF-")
