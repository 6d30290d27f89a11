"""SentEval's transfer tasks (issue 20, part 2) on small synthetic data sets written here in SentEval's file
formats, with a table encoder (a fixed vector per sentence) or probes that record or rig what they are given:
the folds are scikit-learn's StratifiedKFold(k, shuffle=True, random_state=1111) over SentEval's row order, the
regulariser is chosen on held-out training rows and never on the test rows, MRPC's features are [|u-v|, u*v],
a linearly separable set scores 100 and a label-shuffled one about chance, and a missing file is one line,
exit 2, before any model is loaded."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.model_selection import StratifiedKFold

from simcse_lab import cli
from simcse_lab.data import transfer_data
from simcse_lab.data.transfer_data import load_transfer
from simcse_lab.errors import UserError
from simcse_lab.evaluation import transfer
from simcse_lab.evaluation.linear_probe import SklearnProbe, make_probe


class TableEncoder:
    """A sentence encoder that looks its vectors up: the test decides every sentence's vector."""

    def __init__(self, table: dict[str, np.ndarray]):
        self.table = table

    def encode(self, sentences, progress=False):
        return np.stack([self.table[s] for s in sentences]).astype(np.float32)

    def describe(self):
        return {"model": "table", "pooler": "none", "precision": "fp32"}


def sentence(i: int, words: int) -> str:
    return " ".join([f"s{i}"] + ["w"] * (words - 1))


def write_binary(root: Path, task: str, sentences: list[str], labels: list[int]) -> None:
    first, second = (root / rel for rel in transfer_data.FILES[task]["all"])
    first.parent.mkdir(parents=True, exist_ok=True)
    first.write_text("".join(s + "\n" for s, y in zip(sentences, labels) if y == 1), encoding="latin-1")
    second.write_text("".join(s + "\n" for s, y in zip(sentences, labels) if y == 0), encoding="latin-1")


def separable_set(n: int = 200, dim: int = 32, seed: int = 1):
    """Sentences of 1-9 words, balanced labels, vectors (2y - 1) * 1 + N(0, 0.5): separated by the all-ones
    direction (checked), with a margin a linear probe finds."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.repeat([0, 1], n // 2))
    sentences = [sentence(i, int(rng.integers(1, 10))) for i in range(n)]
    vectors = rng.normal(scale=0.5, size=(n, dim)) + (2 * labels - 1)[:, None]
    assert np.all(np.sign(vectors.sum(axis=1)) == 2 * labels - 1)  # linearly separable, for certain
    return sentences, labels, {s: v for s, v in zip(sentences, vectors)}


def senteval_order(sentences, labels):
    """SentEval's own sort before encoding (binary.py): by token count, then label, stable."""
    return sorted(zip(sentences, labels), key=lambda z: (len(z[0].split()), z[1]))


def run_cli(argv):
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    return exc.value.code


# --- data --------------------------------------------------------------------------------------------------


def test_binary_rows_are_read_in_senteval_order(tmp_path):
    sentences, labels, _ = separable_set(n=40)
    write_binary(tmp_path / "downstream", "MR", [s.replace(" ", "  ") for s in sentences], list(labels))
    (data,) = load_transfer(["MR"], tmp_path)
    expected = senteval_order(sentences, labels)
    assert data.splits["all"].sentences == tuple(s for s, _ in expected)  # whitespace normalised as SentEval
    assert data.splits["all"].labels == tuple(int(y) for _, y in expected)
    assert "not checksummed" in data.source


def test_a_missing_file_is_one_line_before_the_model(tmp_path, monkeypatch, capsys):
    sentences, labels, _ = separable_set(n=20)
    write_binary(tmp_path / "downstream", "MR", sentences, list(labels))
    (tmp_path / "downstream" / "MR" / "rt-polarity.neg").unlink()

    def never(*args, **kwargs):
        raise AssertionError("the model was loaded before the data was checked")

    monkeypatch.setattr("simcse_lab.modeling.encoder.load_encoder", never)
    monkeypatch.setattr("simcse_lab.modeling.resolve.resolve_model", never)
    code = run_cli(["eval", "--transfer", "MR,CR", "--senteval-dir", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "rt-polarity.neg is missing" in err and "MR needs" in err


def test_offline_without_data_says_how_to_provide_it(tmp_path, monkeypatch):
    from simcse_lab.data import registry

    registry.manifest.cache_clear()
    monkeypatch.setenv("SIMCSE_LAB_DATA", str(tmp_path / "mirror"))
    monkeypatch.setenv("SIMCSE_LAB_CACHE", str(tmp_path / "cache"))
    with pytest.raises(UserError) as exc:
        load_transfer(["TREC"])
    message = str(exc.value)
    assert "\n" not in message
    assert "--senteval-dir" in message and "data fetch senteval_transfer" in message


def test_registry_copy_is_read_and_said_unpinned(tmp_path, monkeypatch):
    from simcse_lab.data import registry

    registry.manifest.cache_clear()
    sentences, labels, _ = separable_set(n=20)
    write_binary(tmp_path / "mirror" / transfer_data.REGISTRY_ROOT, "CR", sentences, list(labels))
    monkeypatch.setenv("SIMCSE_LAB_DATA", str(tmp_path / "mirror"))
    (data,) = load_transfer(["CR"])
    assert len(data.splits["all"]) == 20
    assert data.source.startswith("registry senteval_transfer (not checksummed")
    assert registry.info("senteval_transfer").url.endswith("senteval.tar")


def test_malformed_rows_name_file_and_line(tmp_path):
    trec = tmp_path / "downstream" / "TREC"
    trec.mkdir(parents=True)
    (trec / "train_5500.label").write_text("DESC:manner How did serfdom develop ?\n", encoding="latin-1")
    (trec / "TREC_10.label").write_text("NUM:date When was it ?\nWHAT:x What is it ?\n", encoding="latin-1")
    with pytest.raises(UserError, match=r"TREC_10\.label:2: unknown TREC class 'WHAT'"):
        load_transfer(["TREC"], tmp_path)


def test_unknown_transfer_task_is_refused():
    with pytest.raises(UserError, match="unknown transfer task"):
        transfer_data.parse_transfer_tasks("MR,STS-Z")
    assert transfer_data.parse_transfer_tasks("sst-2,mr,MR") == ["SST2", "MR"]


# --- the protocol ------------------------------------------------------------------------------------------


class GridByLoop:
    def fit_grid(self, regs, X, y, nclasses, validation):
        return [self.fit(reg, X, y, nclasses, validation) for reg in regs]


class RecordingProbe(GridByLoop):
    """Records the rows (by the id in column 0) of every fit and every scoring; predicts nothing useful."""

    name = "recording"

    def __init__(self):
        self.fits, self.scored = [], []

    def grid(self, protocol):
        return (0.1, 1.0)

    def describe(self):
        return {"classifier": self.name}

    def fit(self, reg, X, y, nclasses, validation):
        held_out = None if isinstance(validation, float) else [int(i) for i in validation[0][:, 0]]
        self.fits.append((reg, [int(i) for i in X[:, 0]], held_out))
        probe = self

        class Model:
            def predict(self, rows):
                return np.zeros(len(rows), dtype=np.int64)

            def score(self, rows, y):
                probe.scored.append([int(i) for i in rows[:, 0]])
                return 0.5

        return Model()


def test_folds_are_sklearns_stratified_kfold_over_senteval_order(tmp_path):
    sentences, labels, _ = separable_set(n=60)
    write_binary(tmp_path / "downstream", "SUBJ", sentences, list(labels))
    (data,) = load_transfer(["SUBJ"], tmp_path)
    ids = {s: i for i, s in enumerate(sentences)}
    encoder = TableEncoder({s: np.array([ids[s], 0.0]) for s in sentences})
    probe = RecordingProbe()
    result = transfer.evaluate_transfer(encoder, [data], "test", probe)
    assert result["kfold"] == 10 and len(result["tasks"]["SUBJ"]["folds"]) == 10

    order = senteval_order(sentences, labels)
    row_ids = np.array([ids[s] for s, _ in order])
    y = np.array([label for _, label in order])
    outer = list(StratifiedKFold(10, shuffle=True, random_state=1111).split(np.zeros(len(y)), y))
    final_fits = [f for f in probe.fits if f[2] is None]
    inner_fits = [f for f in probe.fits if f[2] is not None]
    assert [sorted(f[1]) for f in final_fits] == [sorted(row_ids[train]) for train, _ in outer]
    expected_inner = []
    for train, _ in outer:
        for a, b in StratifiedKFold(10, shuffle=True, random_state=1111).split(np.zeros(len(train)), y[train]):
            expected_inner += [(reg, list(row_ids[train][a]), list(row_ids[train][b])) for reg in (0.1, 1.0)]
    assert inner_fits == expected_inner
    # the outer test rows are scored once each, after their fold's regulariser was chosen
    outer_scored = probe.scored[2 * 10::2 * 10 + 1]
    assert [sorted(s) for s in outer_scored] == [sorted(row_ids[test]) for _, test in outer]


class ColumnProbe(GridByLoop):
    """A rigged probe: the model 'fitted' with regulariser r predicts column COLUMN[r] > 0 (its training is
    irrelevant), so the test decides how every regulariser does on every row."""

    name = "column"
    COLUMN = {1.0: 0, 2.0: 1}

    def grid(self, protocol):
        return tuple(self.COLUMN)

    def describe(self):
        return {"classifier": self.name}

    def fit(self, reg, X, y, nclasses, validation):
        column = self.COLUMN[reg]

        class Model:
            def predict(self, rows):
                return (rows[:, column] > 0).astype(np.int64)

            def score(self, rows, y):
                return float(np.mean(self.predict(rows) == y))

        return Model()


def rigged_columns(y: np.ndarray, test_rows: np.ndarray) -> np.ndarray:
    """Column 0 right everywhere but on ``test_rows`` (all wrong there); column 1 right on ``test_rows`` and
    on every other row. Chosen on held-out training rows, regulariser 1.0 (column 0) wins and scores 0
    on the test rows; chosen on the test rows, 2.0 would win and score 100."""
    sign = 2.0 * y - 1
    col0 = sign.copy()
    col0[test_rows] *= -1
    col1 = sign * np.where(np.arange(len(y)) % 2 == 0, 1, -1)
    col1[test_rows] = sign[test_rows]
    return np.c_[col0, col1]


def test_inner_kfold_chooses_the_regulariser_on_the_inner_folds():
    y = np.repeat([0, 1], 50)
    first_test = transfer.stratified_folds(y, 5)[0][1]
    result = transfer.inner_kfold(ColumnProbe(), rigged_columns(y, first_test), y, 2, k=5)
    fold = result["folds"][0]
    assert fold["regularizer"] == 1.0 and fold["dev_acc"] == 100.0
    assert fold["test_acc"] == 0.0  # 100.0 had the test fold chosen it
    assert fold["n_test"] == len(first_test)


def test_kfold_and_split_choose_the_regulariser_on_train_or_dev():
    y = np.repeat([0, 1], 30)
    rigged = rigged_columns(np.r_[y, y], np.arange(60, 120))
    train, test = (rigged[:60], y), (rigged[60:], y)
    result = transfer.kfold_then_test(ColumnProbe(), train, test, 2, k=5)
    assert (result["regularizer"], result["dev_acc"], result["test_acc"]) == (1.0, 100.0, 0.0)
    result = transfer.split_dev_test(ColumnProbe(), train, train, test, 2)
    assert (result["regularizer"], result["dev_acc"], result["test_acc"]) == (1.0, 100.0, 0.0)


# --- MRPC's features ---------------------------------------------------------------------------------------


def write_mrpc(root: Path, rows_by_split: dict) -> None:
    folder = root / "downstream" / "MRPC"
    folder.mkdir(parents=True)
    for split, rows in rows_by_split.items():
        lines = ["Quality\t#1 ID\t#2 ID\t#1 String\t#2 String"]
        lines += [f"{y}\t{i}\t{i + 1}\t{a}\t{b}" for i, (a, b, y) in enumerate(rows)]
        (folder / f"msr_paraphrase_{split}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")


def paraphrase_rows(n: int, offset: int, rng, table: dict) -> list:
    """Pairs whose label is 1 when the two vectors nearly coincide: only |u - v| tells the labels apart."""
    rows = []
    for i in range(n):
        a, b, y = sentence(offset + 2 * i, 1 + i % 5), sentence(offset + 2 * i + 1, 1 + i % 3), i % 2
        table[a] = rng.normal(size=8)
        table[b] = table[a] + rng.normal(scale=0.05, size=8) if y else rng.normal(size=8)
        rows.append((a, b, y))
    return rows


def test_mrpc_uses_absolute_difference_and_product(tmp_path):
    rng, table = np.random.default_rng(3), {}
    train, test = paraphrase_rows(80, 0, rng, table), paraphrase_rows(40, 1000, rng, table)
    write_mrpc(tmp_path, {"train": train, "test": test})
    (data,) = load_transfer(["MRPC"], tmp_path)
    encoded, _ = transfer.encode_transfer(TableEncoder(table), [data])
    X, y = encoded["MRPC"]["test"]
    ordered = sorted(test, key=lambda r: (len(r[0].split()), len(r[1].split()), r[2]))  # SentEval's mrpc.py sort
    u = np.stack([table[a] for a, _, _ in ordered]).astype(np.float32)
    v = np.stack([table[b] for _, b, _ in ordered]).astype(np.float32)
    assert X.shape == (40, 16)
    np.testing.assert_array_equal(X, np.c_[np.abs(u - v), u * v])
    assert list(y) == [r[2] for r in ordered]
    result = transfer.evaluate_transfer(TableEncoder(table), [data], "fast", SklearnProbe())
    assert result["tasks"]["MRPC"]["test_acc"] == 100.0 and result["tasks"]["MRPC"]["test_f1"] == 100.0


# --- the probe: SentEval's classifier, a grid trained side by side --------------------------------------------


def senteval_loop_reference(reg, X, y, validation, settings, seed=1111):
    """SentEval's PyTorchClassifier (tools/classifier.py, nhid 0) written plainly, one model at a time: the
    seeded nn.Linear, the optimiser's own weight_decay, seeded shuffles, deepcopy of the best, early stopping."""
    import copy

    import torch

    rng = np.random.RandomState(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = torch.nn.Linear(X.shape[1], 2)
    if isinstance(validation, float):
        order = rng.permutation(len(X))
        cut = int(validation * len(X))
        X, y, validation = X[order[cut:]], y[order[cut:]], (X[order[:cut]], y[order[:cut]])
    optim = {"adam": torch.optim.Adam, "rmsprop": torch.optim.RMSprop}[settings.optim]
    optimizer = optim(model.parameters(), weight_decay=reg)
    x, t = torch.from_numpy(X), torch.from_numpy(y)
    dev_x, dev_t = torch.from_numpy(validation[0]), torch.from_numpy(validation[1])
    best, best_model, misses, epochs = -1.0, None, 0, 0
    while epochs <= settings.max_epoch:
        for _ in range(settings.epoch_size):
            order = rng.permutation(len(x))
            for start in range(0, len(x), settings.batch_size):
                batch = torch.from_numpy(order[start:start + settings.batch_size])
                loss = torch.nn.functional.cross_entropy(model(x[batch]), t[batch])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        epochs += settings.epoch_size
        with torch.no_grad():
            accuracy = (model(dev_x).argmax(1) == dev_t).sum().item() / len(dev_t)
        if accuracy > best:
            best, best_model = accuracy, copy.deepcopy(model)
        elif misses >= settings.tenacity:
            break
        else:
            misses += 1
    return best_model


@pytest.mark.parametrize("mode", ["fast", "test"])
@pytest.mark.parametrize("validation", ["held-out", 0.05])
def test_grid_side_by_side_equals_senteval_one_model_at_a_time(mode, validation):
    import torch

    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 300)
    X = (rng.normal(size=(300, 12)) + 0.4 * (2 * y - 1)[:, None] * (np.arange(12) < 3)).astype(np.float32)
    held_out = (X[:60], y[:60]) if validation == "held-out" else validation
    X_new = rng.normal(size=(500, 12)).astype(np.float32)
    settings = transfer.MODES[mode].settings
    probe = make_probe("senteval-torch", settings)
    grid = (1e-5, 1e-2, 0.3, 3.0)  # large penalties too, so that the models differ
    models = probe.fit_grid(grid, X[60:], y[60:], 2, held_out)
    predictions = [m.predict(X_new) for m in models]
    assert len({tuple(p) for p in predictions}) > 1
    for reg, predicted in zip(grid, predictions):
        reference = senteval_loop_reference(reg, X[60:], y[60:], held_out, settings)
        with torch.no_grad():
            expected = reference(torch.from_numpy(X_new)).argmax(1).numpy()
        assert np.mean(predicted == expected) >= 0.998, reg  # float rounding may flip a point on the boundary


# --- end to end: separable 100, shuffled about chance ------------------------------------------------------


@pytest.fixture(autouse=True)
def one_thread():
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # many tiny fits
    yield
    torch.set_num_threads(previous)


def test_separable_set_scores_100_and_shuffled_labels_about_chance(tmp_path):
    sentences, labels, table = separable_set()
    write_binary(tmp_path / "sep" / "downstream", "MR", sentences, list(labels))
    shuffled = np.random.default_rng(7).permutation(labels)
    write_binary(tmp_path / "shuf" / "downstream", "MR", sentences, list(shuffled))
    probe = make_probe("senteval-torch", transfer.MODES["fast"].settings)
    encoder = TableEncoder(table)
    separable = transfer.evaluate_transfer(encoder, load_transfer(["MR"], tmp_path / "sep"), "fast", probe)
    assert separable["tasks"]["MR"]["test_acc"] == 100.0
    assert all(f["test_acc"] == 100.0 for f in separable["tasks"]["MR"]["folds"])
    chance = transfer.evaluate_transfer(encoder, load_transfer(["MR"], tmp_path / "shuf"), "fast", probe)
    assert 35.0 <= chance["tasks"]["MR"]["test_acc"] <= 65.0


def test_trec_six_classes_through_senteval_probe(tmp_path):
    rng, table, lines = np.random.default_rng(11), {}, {"train_5500": [], "TREC_10": []}
    directions = np.eye(6, 24) * 6
    for split, n in (("train_5500", 180), ("TREC_10", 60)):
        for i in range(n):
            label = i % 6
            text = f"what is {split} question {i} ?" + " x" * (i % 4)
            table[" ".join(text.split())] = directions[label] + rng.normal(scale=0.3, size=24)
            lines[split].append(f"{transfer_data.TREC_CLASSES[label]}:other {text}")
    folder = tmp_path / "downstream" / "TREC"
    folder.mkdir(parents=True)
    for split, rows in lines.items():
        (folder / f"{split}.label").write_text("\n".join(rows) + "\n", encoding="latin-1")
    (data,) = load_transfer(["TREC"], tmp_path)
    assert data.nclasses == 6 and len(data.splits["train"]) == 180
    result = transfer.evaluate_transfer(TableEncoder(table), [data], "fast",
                                        make_probe("senteval-torch", transfer.MODES["fast"].settings))
    assert result["tasks"]["TREC"]["test_acc"] == 100.0 and result["tasks"]["TREC"]["n_test"] == 60


def test_too_few_rows_for_the_folds_is_one_line():
    with pytest.raises(UserError, match="8 rows cannot be split into 10 stratified folds"):
        transfer.stratified_folds(np.array([0, 1] * 4), 10)


def test_eval_transfer_cli_prints_both_rows_and_writes_json(tmp_path, monkeypatch, capsys):
    sentences, labels, table = separable_set(n=100)
    write_binary(tmp_path / "downstream", "MPQA", sentences, list(labels))
    split_rows = {name: separable_set(n=40, seed=seed) for name, seed in (("train", 2), ("dev", 3), ("test", 4))}
    folder = tmp_path / "downstream" / "SST" / "binary"
    folder.mkdir(parents=True)
    for name, (sents, ys, vectors) in split_rows.items():
        table.update({s + f" {name}": v for s, v in vectors.items()})
        (folder / f"sentiment-{name}").write_text("".join(f"{s} {name}\t{y}\n" for s, y in zip(sents, ys)))
    monkeypatch.setattr("simcse_lab.modeling.resolve.resolve_model", lambda spec: spec)
    monkeypatch.setattr("simcse_lab.modeling.encoder.load_encoder", lambda *a, **k: TableEncoder(table))
    out = tmp_path / "transfer.json"
    code = run_cli(["eval", "--model", "table", "--transfer", "MPQA,SST2", "--senteval-dir", str(tmp_path),
                    "--transfer-mode", "fast", "--transfer-classifier", "sklearn", "--output", str(out)])
    printed = capsys.readouterr().out
    assert code == 0
    assert "table [none, fp32] test_acc" in printed and "table [none, fp32] dev_acc" in printed
    assert "not checksummed" in printed and "STS-B" not in printed  # --transfer alone: no STS
    result = json.loads(out.read_text())["transfer"]
    assert set(result["tasks"]) == {"mpqa", "sst2"} and set(result["avg"]) == {"test_acc", "dev_acc"}
    mpqa, sst2 = result["tasks"]["mpqa"], result["tasks"]["sst2"]
    assert mpqa["transfer_mode"] == "fast" and mpqa["kfold"] == 5 and len(mpqa["folds"]) == 5
    assert mpqa["probe"]["classifier"] == "sklearn"
    assert mpqa["test_acc"] == 100.0 and sst2["test_acc"] == 100.0
    assert sst2["protocol"] == "split" and "dev split" in sst2["dev_acc_is"]


def test_transfer_tasks_are_declared_tasks():
    from simcse_lab.evaluation.tasks import TASKS, parse_select, parse_tasks

    assert [t.name for t in parse_tasks("mr,sst2,mrpc")] == ["mr", "sst2", "mrpc"]
    mrpc = TASKS["mrpc"].metadata
    assert (mrpc.type, mrpc.main_score, mrpc.splits) == ("transfer", "test_acc", ("test",))
    assert mrpc.metric_names == ("test_acc", "dev_acc", "test_f1")
    assert parse_select("mr:test:dev_acc").metric.name == "dev_acc"
    with pytest.raises(UserError, match="has no metric 'test_f1'"):
        parse_select("mr:test:test_f1")


def test_senteval_dir_expands_the_home_directory(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "SentEval" / "data").mkdir(parents=True)
    code = run_cli(["eval", "--transfer", "CR", "--senteval-dir", "~/SentEval/data"])
    err = capsys.readouterr().err
    assert code == 2 and f"{tmp_path}/SentEval/data/CR/custrev.pos is missing" in err


def test_senteval_dir_without_a_transfer_task_is_refused(tmp_path, capsys):
    code = run_cli(["eval", "--tasks", "stsb", "--senteval-dir", str(tmp_path)])
    assert code == 2 and "no transfer task" in capsys.readouterr().err


def _never_load(monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("the model was loaded before the data was checked")

    monkeypatch.setattr("simcse_lab.modeling.encoder.load_encoder", never)
    monkeypatch.setattr("simcse_lab.modeling.resolve.resolve_model", never)


def test_an_mrpc_label_other_than_0_or_1_is_one_line_before_the_model(tmp_path, monkeypatch, capsys):
    rng = np.random.default_rng(5)
    train, test = paraphrase_rows(20, 0, rng, {}), paraphrase_rows(10, 100, rng, {})
    train[3] = (train[3][0], train[3][1], 2)
    write_mrpc(tmp_path, {"train": train, "test": test})
    _never_load(monkeypatch)
    code = run_cli(["eval", "--transfer", "MRPC", "--senteval-dir", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "msr_paraphrase_train.txt:5: MRPC label 2 is not 0 or 1" in err


def test_a_split_with_one_class_is_one_line_before_the_model(tmp_path, monkeypatch, capsys):
    sentences, _, _ = separable_set(n=40)
    write_binary(tmp_path / "downstream", "MR", sentences, [1] * 40)  # rt-polarity.neg is empty
    _never_load(monkeypatch)
    code = run_cli(["eval", "--transfer", "MR", "--senteval-dir", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "MR: its all split holds only one class (label 1, 40 rows" in err


def test_an_sst2_split_with_one_class_is_refused(tmp_path):
    folder = tmp_path / "downstream" / "SST" / "binary"
    folder.mkdir(parents=True)
    for split in ("train", "dev", "test"):
        labels = [0, 1] * 5 if split != "dev" else [1] * 10
        (folder / f"sentiment-{split}").write_text("".join(f"{sentence(i, 3)}\t{y}\n" for i, y in enumerate(labels)),
                                                   encoding="utf-8")
    with pytest.raises(UserError, match="SST2: its dev split holds only one class"):
        load_transfer(["SST2"], tmp_path)


def test_a_class_too_small_for_the_folds_is_one_line_before_the_model(tmp_path, monkeypatch, capsys):
    sentences, _, _ = separable_set(n=46)
    write_binary(tmp_path / "downstream", "MR", sentences, [1] * 35 + [0] * 11)
    _never_load(monkeypatch)
    code = run_cli(["eval", "--transfer", "MR", "--transfer-mode", "test", "--senteval-dir", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    # 10 outer folds leave 11 - 2 = 9 rows of label 0 to the inner 10 folds: 12 are needed (12 - 2 = 10)
    assert "MR: label 0 has 11 rows; test mode's 10 stratified folds (inner_kfold) need at least 12 rows" in err


def test_fold_sizes_are_checked_on_the_rows_the_protocol_folds():
    def data(task, splits):
        return transfer_data.TransferData(task, {s: transfer_data.TransferSplit(("x",) * len(y), tuple(y))
                                                 for s, y in splits.items()}, 2, "test")

    transfer.check_fold_sizes(data("MR", {"all": [0] * 7 + [1] * 7}), "fast")  # 7 - 2 = 5 rows for 5 inner folds
    with pytest.raises(UserError, match="label 1 has 6 rows"):
        transfer.check_fold_sizes(data("MR", {"all": [0] * 7 + [1] * 6}), "fast")
    transfer.check_fold_sizes(data("MRPC", {"train": [0] * 5 + [1] * 5, "test": [0, 1]}), "fast")
    with pytest.raises(UserError, match=r"MRPC: label 0 has 9 rows; test mode's 10 stratified folds \(kfold\)"):
        transfer.check_fold_sizes(data("MRPC", {"train": [0] * 9 + [1] * 30, "test": [0, 1]}), "test")
    transfer.check_fold_sizes(data("SST2", {"train": [0, 1], "dev": [0, 1], "test": [0, 1]}), "test")  # no folds
