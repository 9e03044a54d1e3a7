"""Pure rendering: a graph in, Kubernetes objects out."""

from drivetrain.render.graph import (
    choose_deployer,
    graph_needs_multinode,
    render_graph,
    spec_deployer,
)

__all__ = ["choose_deployer", "graph_needs_multinode", "render_graph", "spec_deployer"]
