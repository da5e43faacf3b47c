"""A trained run's models are trusted only as far as their checksums go.

``models/manifest.sha256`` vouches for ``manifest.json``, whose digests vouch for the model files;
apply reads exactly the listed files, plain names inside ``models/``, no symlinks, of this format
version. Every tampering ends in one line ``mva: error: ...`` naming the file, nothing written.
Cases that must get past the outer checks re-seal the manifest (recompute its digests), as an
attacker could, so that only the check under test can catch them.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from test_bad_input import assert_one_line_error


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, mva) -> dict[str, Path]:
    """A tiny run (BDT and Fisher) on the classification example; read-only."""
    base = tmp_path_factory.mktemp("store_trust")
    res = mva("-q", "example", "classification", "-n", 200, "--output", base / "ex")
    assert res.returncode == 0, res.stderr
    cfg_path = base / "ex" / "config.yaml"
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["methods"] = {"bdt": {"type": "bdt", "n_estimators": 5}, "fisher": {"type": "linear"}}
    cfg.setdefault("evaluation", {})["plots"] = False
    cfg["split"]["train_size"] = 0
    cfg_path.write_text(yaml.safe_dump(cfg))
    run = base / "run"
    res = mva("-q", "train", cfg_path, "--output", run)
    assert res.returncode == 0, res.stderr
    return {"run": run, "data": base / "ex" / "data" / "toy.root"}


@pytest.fixture
def run(trained: dict[str, Path], tmp_path: Path) -> Path:
    """A private copy of the trained run."""
    dst = tmp_path / "run"
    shutil.copytree(trained["run"], dst, symlinks=True)
    return dst


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _manifest(run: Path) -> dict[str, Any]:
    return json.loads((run / "models" / "manifest.json").read_text())


def _seal(run: Path, manifest: dict[str, Any], redigest: tuple[str, ...] = ()) -> None:
    """Write ``manifest`` with fresh digests for the files of ``redigest`` methods and a fresh
    ``manifest.sha256``: a tampering that keeps every checksum consistent."""
    for name in redigest:
        mdir = run / "models" / name
        files = manifest["methods"][name]["files"]
        for fname in files:
            files[fname] = _digest((mdir / fname).read_bytes())
    path = run / "models" / "manifest.json"
    path.write_text(json.dumps(manifest, indent=1))
    (run / "models" / "manifest.sha256").write_text(
        f"{_digest(path.read_bytes())}  manifest.json\n")


def _apply_fails(mva, trained: dict[str, Path], run: Path, tmp_path: Path, *needles: str
                 ) -> str:
    out = tmp_path / "scored.root"
    res = mva("-q", "apply", run, trained["data"], "--tree", "TreeS", "--output", out)
    return assert_one_line_error(res, *needles, left_behind=out)


def test_untouched_and_resealed_runs_apply(trained, run: Path, tmp_path: Path, mva) -> None:
    assert (run / "models" / "manifest.sha256").is_file()
    _seal(run, _manifest(run), redigest=("bdt", "fisher"))
    out = tmp_path / "scored.root"
    res = mva("-q", "apply", run, trained["data"], "--tree", "TreeS", "--output", out)
    assert res.returncode == 0, res.stderr
    assert out.is_file()


def test_edited_manifest_is_a_checksum_mismatch(trained, run: Path, tmp_path: Path,
                                                mva) -> None:
    manifest = _manifest(run)
    feats = manifest["features"]
    feats[0], feats[1] = feats[1], feats[0]
    path = run / "models" / "manifest.json"
    path.write_text(json.dumps(manifest, indent=1))
    _apply_fails(mva, trained, run, tmp_path, str(path), "checksum mismatch")


def test_missing_manifest_checksum(trained, run: Path, tmp_path: Path, mva) -> None:
    path = run / "models" / "manifest.sha256"
    path.unlink()
    _apply_fails(mva, trained, run, tmp_path, str(path), "missing")


def test_unlisted_arrays_are_not_loaded(trained, run: Path, tmp_path: Path, mva) -> None:
    manifest = _manifest(run)
    del manifest["methods"]["fisher"]["files"]["arrays.npz"]
    target = run / "models" / "fisher" / "arrays.npz"
    with np.load(target) as npz:
        arrays = {k: np.zeros_like(npz[k]) for k in npz.files}
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    target.write_bytes(buf.getvalue())
    _seal(run, manifest)
    _apply_fails(mva, trained, run, tmp_path, str(target), "not listed")


def test_unlisted_blob_is_a_one_line_error(trained, run: Path, tmp_path: Path, mva) -> None:
    manifest = _manifest(run)
    del manifest["methods"]["bdt"]["files"]["model.ubj"]
    _seal(run, manifest)
    _apply_fails(mva, trained, run, tmp_path, str(run / "models" / "bdt"), "model.ubj")


@pytest.mark.parametrize("fname", ["../../x", "/etc/passwd"])
def test_file_outside_the_method_folder(trained, run: Path, tmp_path: Path, fname: str,
                                        mva) -> None:
    outside = run / "models" / "fisher" / fname
    if not outside.exists():
        outside.write_bytes(b"not a model\n")
    manifest = _manifest(run)
    manifest["methods"]["fisher"]["files"][fname] = _digest(outside.read_bytes())
    _seal(run, manifest)
    _apply_fails(mva, trained, run, tmp_path, fname, "not allowed")


def test_method_name_outside_the_models_folder(trained, run: Path, tmp_path: Path,
                                               mva) -> None:
    manifest = _manifest(run)
    manifest["methods"]["../evil"] = manifest["methods"].pop("fisher")
    shutil.copytree(run / "models" / "fisher", run / "evil")
    _seal(run, manifest)
    _apply_fails(mva, trained, run, tmp_path, "manifest.json", "'../evil'", "not allowed")


def test_symlinked_model_file(trained, run: Path, tmp_path: Path, mva) -> None:
    target = run / "models" / "fisher" / "meta.json"
    elsewhere = tmp_path / "meta.json"
    shutil.move(target, elsewhere)
    target.symlink_to(elsewhere)
    _apply_fails(mva, trained, run, tmp_path, str(target), "not allowed")


@pytest.mark.parametrize("version", [99, None])
def test_format_version(trained, run: Path, tmp_path: Path, version: int | None,
                        mva) -> None:
    manifest = _manifest(run)
    if version is None:
        del manifest["format_version"]
    else:
        manifest["format_version"] = version
    _seal(run, manifest)
    line = _apply_fails(mva, trained, run, tmp_path,
                        str(run / "models" / "manifest.json"), "format")
    if version == 99:
        assert "newer" in line


def test_meta_that_is_not_json(trained, run: Path, tmp_path: Path, mva) -> None:
    target = run / "models" / "fisher" / "meta.json"
    target.write_text("{not json")
    _seal(run, _manifest(run), redigest=("fisher",))
    _apply_fails(mva, trained, run, tmp_path, str(target))


def test_arrays_with_an_object_array(trained, run: Path, tmp_path: Path, mva) -> None:
    target = run / "models" / "fisher" / "arrays.npz"
    with np.load(target) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["evil"] = np.array([{"a": 1}, None], dtype=object)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    target.write_bytes(buf.getvalue())
    _seal(run, _manifest(run), redigest=("fisher",))
    _apply_fails(mva, trained, run, tmp_path, str(target))
