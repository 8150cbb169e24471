"""Frontends: model files in, :class:`mlc.graph.Graph` out.  ONNX is the one there is."""
from .convert import outer_scope_names
from .onnx import ModelWarning, import_model, load_model

__all__ = ["import_model", "load_model", "outer_scope_names", "ModelWarning"]
