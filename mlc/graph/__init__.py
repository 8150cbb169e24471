"""The high-level graph IR and its passes."""
from .ir import Graph, Node, Tensor

__all__ = ["Graph", "Node", "Tensor"]
