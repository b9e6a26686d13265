"""The backward pass of a recorded graph, derived from the forward graph's structure:
every node that requires grad gets a gradient (its VJP runs for an op; it accumulates
into .grad for a leaf), and a gradient flows along each forward edge reversed, from a
consumer's VJP to an input that requires grad. Drawn beside the forward pass by to_dot
and the HTML viewer."""


def gradient_nodes(g):
    """Ids of the nodes of the networkx view `g` that a backward pass gives a gradient."""
    return [seq for seq, data in g.nodes(data=True) if data["requires_grad"]]


def gradient_edges(g):
    """(consumer, input) pairs: the consumer's VJP sends a gradient to the input."""
    nodes = g.nodes
    return [(b, a) for a, b in g.edges
            if nodes[a]["requires_grad"] and nodes[b]["requires_grad"]]
