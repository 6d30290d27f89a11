"""CPU serving through ONNX: an exported directory is a --model for eval, index build and search; the int8
export is verified against its fp32 source; bad ONNX input is one line."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import SEARCH_WORDS, random_sentences, write_lines

from simcse_lab.cli import main
from simcse_lab.errors import UserError

SENTENCES = ["a man plays a guitar", "two dogs run on the beach", "hi", "the cat sat on the red table",
             "a woman eats food slowly in the park while a dog runs after a blue ball"]


@pytest.fixture(scope="module")
def exports(tiny_bert, tmp_path_factory):
    """The tiny BERT with mean pooling, exported as ONNX fp32 and int8 (each verified by export itself)."""
    from simcse_lab.export.formats import export

    root = tmp_path_factory.mktemp("onnx")
    reports = {name: export(str(tiny_bert), "onnx", root / name, pooler="avg", quantize=quantize)
               for name, quantize in (("fp32", None), ("int8", "int8"))}
    return root, reports


def test_onnx_encoder_round_trip(tiny_bert, exports):
    from simcse_lab.modeling.encoder import Encoder, load_encoder
    from simcse_lab.modeling.onnx_encoder import OnnxEncoder
    from simcse_lab.modeling.sentence_encoder import SentenceEncoder

    root, reports = exports
    encoder = load_encoder(str(root / "fp32"))
    assert isinstance(encoder, OnnxEncoder) and isinstance(encoder, SentenceEncoder)
    assert encoder.describe()["backend"] == "onnx" and encoder.describe()["precision"] == "fp32" and encoder.dim == 32
    source = Encoder(str(tiny_bert), pooler="avg", precision="fp32").encode(SENTENCES)
    got = encoder.encode(SENTENCES)
    assert got.dtype == np.float32 and got.shape == (len(SENTENCES), 32)
    np.testing.assert_allclose(got, source, atol=1e-4, rtol=0)
    assert reports["fp32"]["max_abs_diff"] <= 1e-4


def test_int8_export_is_verified_against_the_fp32_source(tiny_bert, exports):
    from simcse_lab.export.formats import INT8_TOLERANCE, min_cosine
    from simcse_lab.modeling.encoder import Encoder, load_encoder

    root, reports = exports
    report = reports["int8"]
    assert report["quantization"] == "int8" and report["fp32_max_abs_diff"] <= 1e-4
    assert report["min_cosine"] >= INT8_TOLERANCE["min_cosine"]
    assert report["max_relative_error"] <= INT8_TOLERANCE["max_relative_error"] and report["max_abs_diff"] > 0
    assert json.loads((root / "int8" / "onnx_config.json").read_text())["quantization"] == "int8"
    assert sorted(p.name for p in root.joinpath("int8").glob("*.onnx")) == ["model.onnx"]  # only the int8 graph
    # smaller than the fp32 graph, and not the same vectors (it really is quantized), yet close to them
    assert (root / "int8" / "model.onnx").stat().st_size < (root / "fp32" / "model.onnx").stat().st_size
    encoder = load_encoder(str(root / "int8"))
    assert encoder.describe()["precision"] == "int8"
    got = encoder.encode(SENTENCES)
    source = Encoder(str(tiny_bert), pooler="avg", precision="fp32").encode(SENTENCES)
    assert np.abs(got - source).max() > 1e-6
    assert min_cosine(got, source) >= INT8_TOLERANCE["min_cosine"]
    with pytest.raises(UserError, match="computes at its own precision \\(int8\\)"):
        load_encoder(str(root / "int8"), precision="fp32")


def test_index_build_and_search_through_an_onnx_export(exports, tmp_path, capsys):
    root, _ = exports
    corpus = write_lines(tmp_path / "corpus.txt", sorted(set(random_sentences(60, seed=2, words=SEARCH_WORDS))))
    with pytest.raises(SystemExit) as exc:
        main(["index", "build", "--model", str(root / "int8"), "--corpus", str(corpus), "--output-dir",
              str(tmp_path / "idx"), "--no-progress"])
    assert exc.value.code == 0
    manifest = json.loads((tmp_path / "idx" / "manifest.json").read_text())
    assert manifest["backend"] == "onnx" and manifest["precision"] == "int8" and manifest["pooler"] == "modules"
    capsys.readouterr()
    first = corpus.read_text().splitlines()[0]
    with pytest.raises(SystemExit) as exc:
        main(["search", "--index", str(tmp_path / "idx"), "--query", first, "-k", "3"])
    assert exc.value.code == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"query: {first}" and first in out[1]  # a corpus sentence finds itself first


def test_onnx_input_errors_are_one_line(exports, tmp_path, capsys):
    root, _ = exports
    with pytest.raises(SystemExit) as exc:
        main(["eval", "--model", str(root / "fp32"), "--pooler", "cls"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1 and "pooling built into the graph" in err
    with pytest.raises(SystemExit) as exc:
        main(["export", "--model", str(root / "fp32"), "--format", "hf", "--quantize", "int8", "--output-dir",
              str(tmp_path / "hf")])
    assert exc.value.code == 2 and "applies to --format onnx only" in capsys.readouterr().err
    assert not (tmp_path / "hf").exists()
    broken = tmp_path / "broken"
    broken.mkdir()
    for path in (root / "fp32").iterdir():
        if path.is_file() and path.name != "model.onnx":
            (broken / path.name).write_bytes(path.read_bytes())
    (broken / "model.onnx").write_bytes(b"not a graph")
    from simcse_lab.modeling.encoder import load_encoder

    with pytest.raises(UserError, match="model.onnx: not a loadable ONNX graph"):
        load_encoder(str(broken))
    (broken / "onnx_config.json").write_text(json.dumps({"inputs": ["input_ids"], "output": "x", "dimension": 3,
                                                         "max_seq_length": 8}))
    with pytest.raises(UserError, match="onnx_config.json: inputs must name"):
        load_encoder(str(broken))


def _copy_export(source, target):
    target.mkdir()
    for path in source.iterdir():
        if path.is_file():
            (target / path.name).write_bytes(path.read_bytes())
    return target


def test_a_graph_with_external_data_is_refused_before_anything_reads_it(exports, tmp_path, monkeypatch):
    """onnxruntime reads external data relative to the working directory, even for a graph given as bytes."""
    import onnx
    from onnx import TensorProto, helper

    from simcse_lab.modeling.encoder import load_encoder

    root, _ = exports
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "weights.bin").write_bytes(bytes(16))
    tensor = TensorProto(name="W", data_type=TensorProto.UINT8, dims=[16], data_location=TensorProto.EXTERNAL)
    for key, value in (("location", "weights.bin"), ("offset", "0"), ("length", "16")):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    graph = helper.make_graph([helper.make_node("Add", ["x", "W"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.UINT8, [16])],
                              [helper.make_tensor_value_info("y", TensorProto.UINT8, [16])], initializer=[tensor])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    hostile = _copy_export(root / "fp32", tmp_path / "hostile")
    (hostile / "model.onnx").write_bytes(model.SerializeToString())
    monkeypatch.chdir(outside)  # where onnxruntime would find weights.bin
    with pytest.raises(UserError, match="tensor 'W' is kept in an external data file"):
        load_encoder(str(hostile))
    # the same tensor inside a subgraph (an If branch) is found too
    branch = helper.make_graph([helper.make_node("Identity", ["W"], ["z"])], "b", [],
                               [helper.make_tensor_value_info("z", TensorProto.UINT8, [16])], initializer=[tensor])
    node = helper.make_node("If", ["c"], ["y"], then_branch=branch, else_branch=branch)
    outer = helper.make_graph([node], "g", [helper.make_tensor_value_info("c", TensorProto.BOOL, [])],
                              [helper.make_tensor_value_info("y", TensorProto.UINT8, [16])])
    model = helper.make_model(outer, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    (hostile / "model.onnx").write_bytes(model.SerializeToString())
    with pytest.raises(UserError, match="kept in an external data file"):
        load_encoder(str(hostile))
    assert onnx  # imported for the graph builders above


def _external_values(location: str, length: int):
    """A uint8 tensor whose bytes onnxruntime would read from ``location`` (relative to the working directory)."""
    from onnx import TensorProto

    values = TensorProto(name="v", data_type=TensorProto.UINT8, dims=[length], data_location=TensorProto.EXTERNAL)
    for key, value in (("location", location), ("offset", "0"), ("length", str(length))):
        entry = values.external_data.add()
        entry.key, entry.value = key, value
    return values


def _sparse_constant(output: str, location: str, length: int):
    """A Constant node whose ``sparse_value`` keeps its values in the external file ``location``."""
    from onnx import helper, numpy_helper

    sparse = helper.make_sparse_tensor(_external_values(location, length),
                                       numpy_helper.from_array(np.arange(length, dtype=np.int64), "i"), [length])
    return helper.make_node("Constant", [], [output], sparse_value=sparse)


def _model(graph, **kwargs):
    from onnx import helper

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], **kwargs)
    model.ir_version = 8
    return model


@pytest.fixture
def no_session(monkeypatch):
    """onnxruntime sessions recorded (and still created): a refused graph must never reach onnxruntime."""
    import onnxruntime

    created, real = [], onnxruntime.InferenceSession
    monkeypatch.setattr(onnxruntime, "InferenceSession", lambda *a, **k: created.append(a) or real(*a, **k))
    return created


def test_a_sparse_constant_with_external_values_is_refused_before_anything_reads_it(exports, tmp_path, monkeypatch,
                                                                                   no_session):
    """The review's reproduction: a graph whose embedding is the bytes of a file under the working directory,
    through a Constant node's sparse_value (on 0.2's main, ``encode`` returned the file's bytes)."""
    from onnx import TensorProto, helper, numpy_helper

    from simcse_lab.modeling.encoder import load_encoder

    root, _ = exports
    dim = json.loads((root / "fp32" / "onnx_config.json").read_text())["dimension"]
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    (cwd / "secret.txt").write_bytes(bytes(range(65, 65 + dim)))
    inputs = [helper.make_tensor_value_info(n, TensorProto.INT64, ["b", "s"])
              for n in json.loads((root / "fp32" / "onnx_config.json").read_text())["inputs"]]
    nodes = [_sparse_constant("c", "secret.txt", dim),
             helper.make_node("Cast", ["c"], ["cf"], to=TensorProto.FLOAT),
             helper.make_node("Cast", ["attention_mask"], ["mf"], to=TensorProto.FLOAT),
             helper.make_node("ReduceMax", ["mf"], ["one"], keepdims=1),
             helper.make_node("Unsqueeze", ["cf", "zero"], ["row"]),
             helper.make_node("Mul", ["one", "row"], ["sentence_embedding"])]
    graph = helper.make_graph(nodes, "g", inputs,
                              [helper.make_tensor_value_info("sentence_embedding", TensorProto.FLOAT, ["b", dim])],
                              initializer=[numpy_helper.from_array(np.array([0], np.int64), "zero")])
    hostile = _copy_export(root / "fp32", tmp_path / "hostile")
    (hostile / "model.onnx").write_bytes(_model(graph).SerializeToString())
    monkeypatch.chdir(cwd)  # where onnxruntime would find secret.txt
    with pytest.raises(UserError, match="model.onnx: tensor 'v' is kept in an external data file") as err:
        load_encoder(str(hostile)).encode(["x"])
    assert no_session == [] and "\n" not in str(err.value)


def _in_if_branch(node):
    from onnx import TensorProto, helper

    branch = helper.make_graph([node], "b", [], [helper.make_tensor_value_info("c", TensorProto.UINT8, [4])])
    return _model(helper.make_graph(
        [helper.make_node("If", ["cond"], ["c"], then_branch=branch, else_branch=branch)], "g",
        [helper.make_tensor_value_info("cond", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("c", TensorProto.UINT8, [4])]))


def _in_loop_body_of_if(node):
    """Two levels down: a Loop body inside an If branch."""
    from onnx import TensorProto, helper

    body = helper.make_graph([node, helper.make_node("Identity", ["keep"], ["keep_out"])], "body",
                             [helper.make_tensor_value_info("i", TensorProto.INT64, []),
                              helper.make_tensor_value_info("keep", TensorProto.BOOL, [])],
                             [helper.make_tensor_value_info("keep_out", TensorProto.BOOL, []),
                              helper.make_tensor_value_info("c", TensorProto.UINT8, [4])])
    loop = helper.make_node("Loop", ["n", "cond"], ["c_all"], body=body)
    branch = helper.make_graph([loop], "b", [], [helper.make_tensor_value_info("c_all", TensorProto.UINT8, None)])
    return _model(helper.make_graph(
        [helper.make_node("If", ["cond"], ["c_all"], then_branch=branch, else_branch=branch)], "g",
        [helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
         helper.make_tensor_value_info("n", TensorProto.INT64, [])],
        [helper.make_tensor_value_info("c_all", TensorProto.UINT8, None)]))


def _in_function(node):
    from onnx import TensorProto, helper

    function = helper.make_function("hostile", "Leak", [], ["c"], [node], [helper.make_opsetid("", 17)])
    graph = helper.make_graph([helper.make_node("Leak", [], ["c"], domain="hostile")], "g", [],
                              [helper.make_tensor_value_info("c", TensorProto.UINT8, [4])])
    model = _model(graph, functions=[function])
    model.opset_import.append(helper.make_opsetid("hostile", 1))
    return model


def _in_sparse_tensors_attribute(node):
    """A list-of-sparse-tensors attribute (no standard operator takes one; the walk is generic, not a list)."""
    from onnx import AttributeProto, TensorProto, helper

    sparse = node.attribute[0].sparse_tensor
    node.ClearField("attribute")
    node.attribute.append(AttributeProto(name="sparse_values", type=AttributeProto.SPARSE_TENSORS,
                                         sparse_tensors=[sparse]))
    return _model(helper.make_graph([node], "g", [], [helper.make_tensor_value_info("c", TensorProto.UINT8, [4])]))


def _in_training_info(node):
    from onnx import TensorProto, helper

    model = _model(helper.make_graph([helper.make_node("Constant", [], ["c"], value_ints=[1, 2, 3, 4])], "g", [],
                                     [helper.make_tensor_value_info("c", TensorProto.INT64, [4])]))
    model.training_info.add().initialization.CopyFrom(
        helper.make_graph([node], "init", [], [helper.make_tensor_value_info("c", TensorProto.UINT8, [4])]))
    return model


@pytest.mark.parametrize("place", [_in_if_branch, _in_loop_body_of_if, _in_function, _in_sparse_tensors_attribute,
                                   _in_training_info])
def test_external_data_is_found_wherever_it_sits(tmp_path, monkeypatch, no_session, place):
    from simcse_lab.modeling.loading import load_onnx_session

    (tmp_path / "secret.txt").write_bytes(b"DATA")
    path = tmp_path / "model.onnx"
    path.write_bytes(place(_sparse_constant("c", "secret.txt", 4)).SerializeToString())
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match="tensor 'v' is kept in an external data file"):
        load_onnx_session(path)
    assert no_session == []


def test_onnx_config_that_contradicts_its_graph_is_one_line(exports, tmp_path):
    from simcse_lab.modeling.encoder import load_encoder

    root, _ = exports
    bad = _copy_export(root / "fp32", tmp_path / "bad")
    meta = json.loads((bad / "onnx_config.json").read_text())
    (bad / "onnx_config.json").write_text(json.dumps({**meta, "inputs": [["input_ids"]]}))
    with pytest.raises(UserError, match="onnx_config.json: inputs must name"):
        load_encoder(str(bad))
    (bad / "onnx_config.json").write_text(json.dumps({**meta, "dimension": meta["dimension"] + 1}))
    with pytest.raises(UserError, match="model.onnx: output 'sentence_embedding' has"):
        load_encoder(str(bad)).encode(SENTENCES)
    (bad / "onnx_config.json").write_text(json.dumps(meta))
    (bad / "tokenizer.json").write_text("{not json")
    with pytest.raises(UserError, match="cannot load model"):
        load_encoder(str(bad))


def test_an_export_without_its_tokenizer_files_says_so(exports, tmp_path, no_session):
    """Not transformers' "Couldn't instantiate the backend tokenizer from one of: " cut at the colon (no tokenizer
    file at all), nor, worse, a tokenizer of 5 special tokens built from tokenizer_config.json alone (every word
    [UNK], silently); and said before the graph is loaded."""
    from simcse_lab.modeling.encoder import load_encoder

    root, _ = exports
    bare = _copy_export(root / "fp32", tmp_path / "notok")
    for name in ("tokenizer.json", "vocab.txt", "special_tokens_map.json"):
        (bare / name).unlink(missing_ok=True)
    for left in ("tokenizer_config.json only", "nothing"):
        with pytest.raises(UserError) as err:
            load_encoder(str(bare))
        assert str(err.value).startswith(f"{bare}: no tokenizer files (tokenizer.json / vocab.txt"), left
        assert "\n" not in str(err.value) and no_session == []
        (bare / "tokenizer_config.json").unlink(missing_ok=True)


def test_onnx_needs_its_extra_and_says_so(tiny_bert, tmp_path, monkeypatch):
    import builtins

    from simcse_lab.export.formats import export

    real_import = builtins.__import__

    def no_onnxruntime(name, *args, **kwargs):
        if name == "onnxruntime" or name.startswith("onnxruntime."):
            raise ImportError("No module named 'onnxruntime'", name="onnxruntime")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_onnxruntime)
    with pytest.raises(UserError, match=r"pip install 'simcse-lab\[onnx\]' \(onnxruntime is not installed\)"):
        export(str(tiny_bert), "onnx", tmp_path / "out", pooler="avg")
    assert not (tmp_path / "out").exists()


def test_int8_verification_does_not_depend_on_the_vectors_scale(tmp_path, monkeypatch, caplog):
    """An unnormalised model with large coordinates (its last LayerNorm scaled by 50, so every vector and every
    quantisation error is 50 times larger) passes as the same model at scale 1 does: the bound is on each
    vector's error relative to its length, and the same number comes out at both scales. A broken int8 graph
    (vectors from another model) is still refused, with nothing written. onnxruntime's advice to pre-process
    (which fails on this graph: formats._quantize_int8) is not printed."""
    import torch
    from transformers import BertModel

    from conftest import make_tiny_bert
    from simcse_lab.export import formats
    from simcse_lab.export.formats import export

    small = make_tiny_bert(tmp_path / "small", seed=1)
    model = BertModel.from_pretrained(small)
    with torch.no_grad():
        model.encoder.layer[-1].output.LayerNorm.weight.mul_(50)
        model.encoder.layer[-1].output.LayerNorm.bias.mul_(50)
    large = tmp_path / "large"
    model.save_pretrained(large)
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (small / name).is_file():
            (large / name).write_bytes((small / name).read_bytes())
    reports = {name: export(str(path), "onnx", tmp_path / f"out-{name}", pooler="cls_before_pooler",
                            quantize="int8") for name, path in (("small", small), ("large", large))}
    assert not [r for r in caplog.records if "pre-processing" in r.getMessage()]  # onnxruntime's advice, dropped
    assert reports["large"]["max_abs_diff"] > 20 * reports["small"]["max_abs_diff"]
    np.testing.assert_allclose(reports["large"]["max_relative_error"], reports["small"]["max_relative_error"],
                               rtol=0.05)
    np.testing.assert_allclose(reports["large"]["min_cosine"], reports["small"]["min_cosine"], atol=1e-3)

    def wrong_graph(tmp, meta):  # an int8 graph of a different model: must not pass as this one's
        meta = real_quantize(tmp, meta)
        other = formats.load_source(str(make_tiny_bert(tmp_path / "other", seed=9)), "cls_before_pooler")[0]
        formats._write_onnx(other, tmp)
        return meta

    real_quantize = formats._quantize_int8
    monkeypatch.setattr(formats, "_quantize_int8", wrong_graph)
    with pytest.raises(UserError, match="int8 export verification failed: max relative error"):
        export(str(small), "onnx", tmp_path / "refused", pooler="cls_before_pooler", quantize="int8")
    assert not (tmp_path / "refused").exists()
