"""Reading events: real ROOT files written by experiment software (NanoAOD, TreeMaker, a DUNE
ntuple in a subdirectory) checked against uproot directly, CSV/Parquet/ROOT giving the same
events, and every input error naming the file, tree or branch at fault."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pandas as pd
import pytest
import uproot

from mva.errors import InputError
from mva.io.events import Events, evaluate_matrix, read_sample
from mva.io.readers import (
    count_entries,
    describe,
    expand_files,
    file_format,
    iter_columns,
    list_trees,
)

DATA = Path(__file__).resolve().parent.parent / "data"
NANO = str(DATA / "nano_dimuon.root")
TREEMAKER = str(DATA / "treemaker.root")
PDUNE = str(DATA / "pduneana.root")


@pytest.fixture(scope="module")
def nano() -> dict:
    """The NanoAOD branches the tests use, read with uproot alone."""
    with uproot.open(NANO) as f:
        t = f["Events"]
        flat = t.arrays(["nMuon", "run", "event", "PV_npvs", "HLT_IsoMu24", "PuppiMET_pt"],
                        library="np")
        jag = t.arrays(["Muon_pt", "Muon_eta", "Muon_tightId", "Muon_highPtId"], library="ak")
    out = dict(flat)
    out.update({k: ak.to_list(jag[k]) for k in jag.fields})
    return out


def _nth(lists: list, i: int, default: float) -> np.ndarray:
    return np.array([float(x[i]) if len(x) > i else default for x in lists])


# ------------------------------------------------------------------------------ ROOT files


def test_flat_branches_of_odd_types_match_uproot(nano: dict) -> None:
    names = ["nMuon", "run", "event", "PV_npvs", "HLT_IsoMu24", "PuppiMET_pt"]
    assert nano["nMuon"].dtype == np.uint32 and nano["HLT_IsoMu24"].dtype == np.bool_
    assert nano["event"].dtype == np.uint64 and nano["PV_npvs"].dtype == np.int32
    ev = read_sample([NANO], "Events", features=names, label=1)
    assert isinstance(ev, Events) and len(ev) == 40
    assert ev.features.dtype == np.float64 and ev.feature_names == names
    for j, name in enumerate(names):
        np.testing.assert_array_equal(ev.features[:, j], nano[name].astype(np.float64))
    np.testing.assert_array_equal(ev.weights, np.ones(40))
    np.testing.assert_array_equal(ev.labels, np.ones(40))
    assert ev.sources[0]["entries"] == 40 and ev.sources[0]["tree"] == "Events"


def test_local_files_are_read_without_fsspec(nano: dict) -> None:
    """A local file is read through uproot's plain file source (fsspec's event-loop and file
    threads hand every chunk over twice), with the same values as uproot's default; remote
    URLs keep uproot's choice."""
    from mva.io.readers import _local_handler, _open_root

    f = _open_root(NANO)
    assert isinstance(f.file.source, uproot.MultithreadedFileSource)
    np.testing.assert_array_equal(f["Events"]["PuppiMET_pt"].array(library="np"),
                                  nano["PuppiMET_pt"])
    for url in ("root://eosuser.cern.ch//eos/a.root", "https://example.org/a.root",
                "s3://bucket/a.root"):
        assert _local_handler(url) == {}


def test_jagged_branches_index_and_reduce(nano: dict) -> None:
    feats = ["Muon_pt[0]", "Muon_pt[1]", "Muon_highPtId[1]", "count(Muon_pt)",
             "sum(Muon_tightId)", "max(abs(Muon_eta))"]
    ev = read_sample([NANO], "Events", features=feats, default=-5.0)
    pt, hid, tight, eta = (nano[k] for k in ("Muon_pt", "Muon_highPtId", "Muon_tightId",
                                             "Muon_eta"))
    assert any(len(x) == 0 for x in pt) and any(len(x) == 1 for x in pt)
    np.testing.assert_allclose(ev.features[:, 0], _nth(pt, 0, -5.0))
    np.testing.assert_allclose(ev.features[:, 1], _nth(pt, 1, -5.0))
    np.testing.assert_array_equal(ev.features[:, 2], _nth(hid, 1, -5.0))
    # count of a jagged branch is NanoAOD's own counter branch
    np.testing.assert_array_equal(ev.features[:, 3], nano["nMuon"])
    np.testing.assert_array_equal(ev.features[:, 4], [sum(x) for x in tight])
    np.testing.assert_allclose(
        ev.features[:, 5], [max(abs(v) for v in x) if x else -5.0 for x in eta], rtol=1e-6)


def test_weight_cut_and_spectators(nano: dict) -> None:
    cut = "nMuon >= 2 && abs(Muon_eta[0]) < 2.4 && !HLT_IsoMu24"
    ev = read_sample([NANO], "Events", features=["Muon_pt[1]"], weight="PuppiMET_pt / 10",
                     cut=cut, spectators=["event"], label=0)
    eta0 = _nth(nano["Muon_eta"], 0, -999.0)
    mask = (nano["nMuon"] >= 2) & (np.abs(eta0) < 2.4) & ~nano["HLT_IsoMu24"]
    assert 0 < mask.sum() < 40
    assert len(ev) == mask.sum() and ev.sources[0]["selected"] == mask.sum()
    np.testing.assert_allclose(ev.features[:, 0], _nth(nano["Muon_pt"], 1, -999.0)[mask])
    np.testing.assert_allclose(ev.weights, nano["PuppiMET_pt"][mask] / 10, rtol=1e-6)
    np.testing.assert_array_equal(ev.spectators[0], nano["event"][mask])
    np.testing.assert_array_equal(ev.labels, np.zeros(mask.sum()))


def test_tree_in_subdirectory() -> None:
    assert list_trees(PDUNE) == ["pduneana/beamana"]
    with uproot.open(PDUNE) as f:
        t = f["pduneana/beamana"]
        ln, flip = t["reco_beam_len"].array(library="np"), t["reco_beam_passes_beam_cuts"].array(
            library="np")
        tpc = ak.to_list(t["reco_beam_calo_TPC"].array())
    feats = ["reco_beam_len", "reco_beam_passes_beam_cuts", "count(reco_beam_calo_TPC)"]
    for tree in ("pduneana/beamana", None):   # the only tree is found without naming it
        ev = read_sample([PDUNE], tree, features=feats)
        np.testing.assert_array_equal(ev.features[:, 0], ln)
        np.testing.assert_array_equal(ev.features[:, 1], flip.astype(float))
        np.testing.assert_array_equal(ev.features[:, 2], [len(x) for x in tpc])


def test_treemaker_vectors_and_structured_objects() -> None:
    with uproot.open(TREEMAKER) as f:
        t = f["PreSelection"]
        charge = ak.to_list(t["Muons_charge"].array())
        njets = t["NJets"].array(library="np")
    ev = read_sample([TREEMAKER], "PreSelection", features=["NJets", "Muons_charge[0]"],
                     default=0.0)
    np.testing.assert_array_equal(ev.features[:, 0], njets)
    np.testing.assert_array_equal(ev.features[:, 1], _nth(charge, 0, 0.0))
    # a LorentzVector branch is a record, not a number: the error says what to use instead
    with pytest.raises(InputError, match=r"treemaker\.root.*'Muons'.*sub-branches"):
        read_sample([TREEMAKER], "PreSelection", features=["count(Muons)"])


def test_list_trees_and_describe() -> None:
    assert list_trees(NANO) == ["Events", "Runs"]
    info = {d["tree"]: d for d in describe(NANO)}
    assert set(info) == {"Events", "Runs"} and info["Events"]["entries"] == 40
    kinds = {b["name"]: (b["kind"], b["type"]) for b in info["Events"]["branches"]}
    assert kinds["nMuon"] == ("flat", "uint32_t")
    assert kinds["Muon_pt"][0] == "jagged" and kinds["HLT_IsoMu24"] == ("flat", "bool")
    (pd_info,) = describe(PDUNE)
    assert pd_info["tree"] == "pduneana/beamana" and pd_info["entries"] == 10
    with uproot.open(NANO) as f:
        n_runs = f["Runs"].num_entries
    assert count_entries(PDUNE, "pduneana/beamana") == 10 and count_entries(NANO, "Runs") == n_runs


def test_chunks_cover_the_file_in_order(nano: dict) -> None:
    chunks = list(iter_columns(NANO, "Events", {"nMuon": "nMuon", "Muon_pt": "Muon_pt[0]"},
                               step_size=15))
    assert [s for s, _ in chunks] == [0, 15, 30]
    np.testing.assert_array_equal(np.concatenate([c["nMuon"] for _, c in chunks]),
                                  nano["nMuon"])
    assert sum(len(c["Muon_pt"]) for _, c in chunks) == 40


# ------------------------------------------------------------------------------ errors


def test_missing_file(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.root")
    with pytest.raises(InputError, match=r"missing\.root: file not found"):
        read_sample([missing], "Events", features=["x"])
    with pytest.raises(InputError, match="no file matches"):
        read_sample([str(tmp_path / "nothing*.root")], "Events", features=["x"])
    with pytest.raises(InputError, match="no input files"):
        read_sample([], "Events", features=["x"])


def test_missing_tree_lists_the_trees() -> None:
    msg = r"nano_dimuon\.root: no tree 'Evnts' \(trees: Events, Runs\)"
    with pytest.raises(InputError, match=msg):
        read_sample([NANO], "Evnts", features=["nMuon"])
    with pytest.raises(InputError, match=r"give the tree.*Events, Runs"):
        read_sample([NANO], None, features=["nMuon"])


def test_missing_branch_names_branch_and_expression() -> None:
    with pytest.raises(InputError, match=r"nano_dimuon\.root:Events: no branch 'Muon_ptt' "
                                         r"\(needed by 'Muon_ptt\[0\] \* 2'\)"):
        read_sample([NANO], "Events", features=["nMuon", "Muon_ptt[0] * 2"])


def test_corrupt_file(tmp_path: Path) -> None:
    bad = tmp_path / "x.root"
    bad.write_bytes(b"this is not a ROOT file\0" * 50)
    with pytest.raises(InputError, match=r"x\.root: not a readable ROOT file"):
        read_sample([str(bad)], "Events", features=["a"])
    with pytest.raises(InputError, match=r"x\.root"):
        list_trees(str(bad))


def test_nan_feature_reports_count_and_first_entry(nano: dict) -> None:
    n = nano["nMuon"].astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        bad = ~np.isfinite(np.log(n - 1))
    assert bad.sum() >= 2
    expected = rf"feature 'log\(nMuon - 1\)' has {bad.sum()} NaN/inf value\(s\) " \
               rf"\(first at entry {np.argmax(bad)}\)"
    with pytest.raises(InputError, match=expected):
        read_sample([NANO], "Events", features=["nMuon", "log(nMuon - 1)"])
    # after a cut, the entry is still the file's entry, not the row among selected events
    keep = n != 0
    bad_kept = bad & keep
    first = int(np.flatnonzero(bad_kept)[0])
    assert first != int(np.flatnonzero(bad_kept[keep])[0])
    with pytest.raises(InputError, match=rf"has {bad_kept.sum()} NaN.*first at entry {first}\)"):
        read_sample([NANO], "Events", features=["log(nMuon - 1)"], cut="nMuon != 0")
    with pytest.raises(InputError, match=r"weight 'sqrt\(nMuon - 2\)' has"):
        read_sample([NANO], "Events", features=["nMuon"], weight="sqrt(nMuon - 2)")


def test_cut_leaving_no_events() -> None:
    with pytest.raises(InputError, match=r"no events after the cut 'nMuon > 100'"):
        read_sample([NANO], "Events", features=["nMuon"], cut="nMuon > 100")


def test_bad_expressions_become_input_errors() -> None:
    with pytest.raises(InputError, match=r"feature 'Muon_pt'.*jagged.*Muon_pt\[0\]"):
        read_sample([NANO], "Events", features=["Muon_pt"])
    with pytest.raises(InputError, match=r"feature: .*'nMuon \+'"):
        read_sample([NANO], "Events", features=["nMuon +"])
    with pytest.raises(InputError, match=r"cut 'sum\(nMuon\)'"):
        read_sample([NANO], "Events", features=["nMuon"], cut="sum(nMuon)")


def test_unknown_file_type() -> None:
    with pytest.raises(InputError, match=r"data\.xlsx: unknown file type"):
        file_format("data.xlsx")
    assert file_format("a.ROOT") == "root" and file_format("b.csv.gz") == "csv"
    assert file_format("c.pq") == "parquet"


def test_empty_tree(tmp_path: Path) -> None:
    path = str(tmp_path / "empty.root")
    with uproot.recreate(path) as f:
        f.mktree("t", {"x": np.float64})
    with pytest.raises(InputError, match=r"empty\.root:t: the tree is empty"):
        read_sample([path], "t", features=["x"])


def test_evaluate_matrix_names_entries() -> None:
    cols = {"x": np.array([1.0, np.nan, 2.0, np.inf])}
    with pytest.raises(InputError, match=r"f\.csv: feature 'x' has 2 NaN/inf.*entry 11\)"):
        evaluate_matrix(cols, ["x"], -999.0, "f.csv", "feature", first_entry=10)
    with pytest.raises(InputError, match=r"entry 7\)"):
        evaluate_matrix(cols, ["x"], -999.0, "f.csv", "feature", entries=np.array([3, 7, 8, 9]))
    out = evaluate_matrix(cols, ["x"], -999.0, "f.csv", "spectator", check_finite=False)
    assert np.isnan(out[1, 0]) and np.isinf(out[3, 0])


# ------------------------------------------------------------------------------ formats


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    n = 60
    return pd.DataFrame({
        "x": rng.normal(size=n),
        "k": rng.integers(0, 5, n).astype(np.int32),
        "flag": rng.random(n) > 0.5,
        "w": rng.uniform(0.5, 2.0, n),
    })


def _write_root(path: str, data: dict) -> None:
    with uproot.recreate(path) as f:
        f.mktree("tree", {k: (v.type if isinstance(v, ak.Array) else v.dtype)
                          for k, v in data.items()})
        f["tree"].extend(data)


def test_csv_parquet_and_root_give_the_same_events(tmp_path: Path, table: pd.DataFrame) -> None:
    csv, pq, root = (str(tmp_path / f"t.{e}") for e in ("csv", "parquet", "root"))
    table.to_csv(csv, index=False)
    table.to_parquet(pq)
    _write_root(root, {c: table[c].to_numpy() for c in table})
    kw = dict(features=["x", "k", "flag", "x * k"], weight="w", cut="k > 1 && !flag",
              targets=["x ** 2"], spectators=["k"], label=1)
    evs = [read_sample([p], "tree" if p.endswith("root") else None, **kw) for p in (csv, pq, root)]
    mask = (table.k > 1) & ~table.flag
    x, k = table.x[mask].to_numpy(), table.k[mask].to_numpy()
    for ev in evs:
        np.testing.assert_allclose(ev.features, np.c_[x, k, np.zeros(len(x)), x * k],
                                   rtol=1e-12)
        np.testing.assert_allclose(ev.weights, table.w[mask], rtol=1e-12)
        np.testing.assert_allclose(ev.targets[:, 0], x ** 2, rtol=1e-12)
        np.testing.assert_array_equal(ev.spectators[0], k)
    for p in (csv, pq):
        (d,) = describe(p)
        assert d["entries"] == len(table) and [b["name"] for b in d["branches"]] == list(table)


def test_parquet_list_column_equals_root_jagged_branch(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    lists = [list(rng.normal(50, 10, k)) for k in rng.integers(0, 4, 40)]
    x = rng.normal(size=40)
    pq, root = str(tmp_path / "j.parquet"), str(tmp_path / "j.root")
    pd.DataFrame({"x": x, "J": lists}).to_parquet(pq)
    _write_root(root, {"x": x, "J": ak.Array(lists)})
    feats = ["J[0]", "J[1]", "count(J)", "max(J)", "sum(J) + x"]
    expected = np.c_[_nth(lists, 0, -1.0), _nth(lists, 1, -1.0), [len(v) for v in lists],
                     [max(v) if v else -1.0 for v in lists], [sum(v) for v in lists] + x]
    for path, tree in ((pq, None), (root, "tree")):
        ev = read_sample([path], tree, features=feats, default=-1.0)
        np.testing.assert_allclose(ev.features, expected, rtol=1e-12)
    kinds = {b["name"]: b["kind"] for b in describe(pq)[0]["branches"]}
    assert kinds == {"x": "flat", "J": "jagged"}


def test_glob_pattern_reads_all_matching_files_in_order(tmp_path: Path,
                                                        table: pd.DataFrame) -> None:
    parts = np.array_split(np.arange(len(table)), 3)
    for i, idx in enumerate(parts):
        table.iloc[idx].to_csv(tmp_path / f"part{i}.csv", index=False)
    (tmp_path / "other.csv").write_text("x,k,flag,w\n99,1,False,1\n")
    assert expand_files([str(tmp_path / "part*.csv")]) == [
        str(tmp_path / f"part{i}.csv") for i in range(3)]
    ev = read_sample([str(tmp_path / "part*.csv")], None, features=["x"], weight="w")
    np.testing.assert_allclose(ev.features[:, 0], table.x)
    np.testing.assert_allclose(ev.weights, table.w)
    assert [s["entries"] for s in ev.sources] == [len(i) for i in parts]
    # explicit files and patterns mix, keeping the given order
    ev2 = read_sample([str(tmp_path / "other.csv"), str(tmp_path / "part[12].csv")], None,
                      features=["x"])
    np.testing.assert_allclose(ev2.features[:, 0], np.r_[99.0, table.x[len(parts[0]):]])


def test_missing_csv_column_and_non_numeric(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_text("x,name\n1.0,a\n2.0,b\n")
    with pytest.raises(InputError, match=r"s\.csv: no column 'y' \(needed by 'y \+ 1'\)"):
        read_sample([str(path)], None, features=["y + 1"])
    with pytest.raises(InputError, match=r"s\.csv: feature 'name'.*not numeric"):
        read_sample([str(path)], None, features=["name"])


def test_events_subset_and_concatenate(table: pd.DataFrame, tmp_path: Path) -> None:
    path = str(tmp_path / "t.csv")
    table.to_csv(path, index=False)
    sig = read_sample([path], None, features=["x"], cut="flag", label=1)
    bkg = read_sample([path], None, features=["x"], cut="!flag", label=0)
    both = Events.concatenate([sig, bkg])
    assert len(both) == len(table) and both.labels.sum() == table.flag.sum()
    assert len(both.sources) == 2
    sub = both.subset(np.flatnonzero(both.labels == 1))
    np.testing.assert_array_equal(sub.features, sig.features)


def test_concatenate_with_rows_equals_concatenate_then_subset() -> None:
    """Gathering sorted rows straight from the parts (the train/test split) gives what
    concatenating all events and taking the rows gives, dtypes promoted alike, also with an
    empty part and spectators."""

    rng = np.random.default_rng(0)

    def part(n: int, dtype: type, k: int) -> Events:
        return Events(features=rng.normal(size=(n, 3)).astype(dtype), weights=rng.random(n),
                      feature_names=list("abc"), labels=np.full(n, k),
                      spectators=[np.arange(n, dtype=np.int64) + 1000 * k],
                      spectator_names=["event"])

    parts = [part(50, np.float32, 0), part(70, np.float64, 1), part(0, np.float32, 2),
             part(30, np.float32, 3)]
    rows = np.sort(rng.choice(150, 80, replace=False))
    got = Events.concatenate(parts, rows=rows)
    want = Events.concatenate(parts).subset(rows)
    for name in ("features", "weights", "labels"):
        a, b = getattr(got, name), getattr(want, name)
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(got.spectators[0], want.spectators[0])
    same = Events.concatenate(parts[:1] + parts[3:], rows=np.arange(80))
    assert same.features.dtype == np.float32
    np.testing.assert_array_equal(same.features, np.concatenate(
        [parts[0].features, parts[3].features]))
