"""A host's linked structure: a script can walk it one attribute at a time."""

from __future__ import annotations


class Node:
    def __init__(self, index: int, next_node: Node | None) -> None:
        self.index = index
        self.value = index
        self.next = next_node


def chain(length: int) -> Node:
    """``length`` nodes, the first returned; the last one's ``next`` is None."""
    head: Node | None = None
    for index in reversed(range(length)):
        head = Node(index, head)
    assert head is not None
    return head
