"""One trained model (its preprocessing and method) as an ONNX model with documented names.

The graph takes ``features``: float32, ``[N, n_features]``, the raw feature values in the order
of the run's ``features`` (the preprocessing is inside the graph). Its outputs, all float32:

- binary classification: ``score`` ``[N]``, exactly the score ``mva`` writes;
- multiclass: ``probabilities`` ``[N, K]`` in classID order;
- regression: ``prediction`` ``[N, n_targets]`` and, for methods that predict a width,
  ``sigma`` ``[N, n_targets]``.

A method converter (one module per method family, registered in :data:`mva.export.EXPORTERS`)
gets the graph, the :class:`Features` and the fitted method and returns its outputs by name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from mva.export.onnx_graph import IR_VERSION, ML_OPSET, OPSET, Graph
from mva.export.preprocessing import pipeline_to_onnx

__all__ = ["Features", "INPUT", "output_names", "build_model"]

INPUT = "features"


@dataclass
class Features:
    """The graph's input as a converter sees it."""

    g: Graph
    #: the float32 graph input
    raw: str
    #: the preprocessed features, float64
    x: str
    #: whether the method has no preprocessing (``x`` is the input as float64)
    identity: bool

    def float32(self) -> str:
        """The preprocessed features as float32 (what xgboost and torch compute on)."""
        return self.raw if self.identity else self.g.cast(self.x, "float")


def output_names(task: str, has_sigma: bool = False) -> list[str]:
    if task == "classification":
        return ["score"]
    if task == "multiclass":
        return ["probabilities"]
    return ["prediction", "sigma"] if has_sigma else ["prediction"]


def _output_shape(name: str, width: int) -> list[Any]:
    return ["N"] if name == "score" else ["N", width]


def build_model(trained: Any, task: str, n_features: int, width: int, converter: Any,
                metadata: dict[str, Any], doc: str) -> Any:
    """The ONNX model of ``trained`` (a :class:`mva.store.TrainedMethod`).

    ``width`` is the number of classes (multiclass) or targets (regression); ``converter`` the
    method family's ``to_onnx(features, model, task)``; ``metadata`` goes into the model's
    ``metadata_props`` (non-string values as JSON)."""
    import onnx
    from onnx import TensorProto, helper

    g = Graph(trained.name)
    x64 = g.cast(INPUT, "double")
    x = pipeline_to_onnx(g, x64, trained.pipeline)
    feats = Features(g, INPUT, x, identity=len(trained.pipeline) == 0)
    produced = converter(feats, trained.model, task)
    outputs = []
    for name, tensor in produced.items():
        g.nodes.append(helper.make_node("Cast", [tensor], [name], to=TensorProto.FLOAT,
                                        name=g.fresh(f"out_{name}")))
        outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT,
                                                     _output_shape(name, width)))
    inputs = [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["N", n_features])]
    graph = g.to_proto(inputs, outputs)
    opsets = [helper.make_opsetid("", OPSET)]
    if any(n.domain == "ai.onnx.ml" for n in g.nodes):
        opsets.append(helper.make_opsetid("ai.onnx.ml", ML_OPSET))
    model = helper.make_model(graph, opset_imports=opsets, producer_name="mva",
                              producer_version=str(metadata.get("mva_version", "")),
                              doc_string=doc)
    model.ir_version = IR_VERSION
    helper.set_model_props(model, {k: v if isinstance(v, str) else json.dumps(v)
                                   for k, v in metadata.items()})
    onnx.checker.check_model(model, full_check=True)
    return model
