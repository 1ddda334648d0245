"""A griffe extension (mkdocs.yml names it): doctest examples in docstrings become fenced
``pycon`` code blocks, so markdown shows them as code instead of nested block quotes.

A doctest block starts at a line beginning ``>>>`` and runs to the next blank line, as
doctest reads it.  Double-backquoted reST literals already read as markdown code spans.
"""

import griffe


def fence_doctests(text):
    """``text`` with each doctest block wrapped in a fenced ``pycon`` block.

    >>> print(fence_doctests("Add:\\n\\n    >>> 1 + 1\\n    2\\n"))
    Add:
    <BLANKLINE>
        ```pycon
        >>> 1 + 1
        2
        ```
    <BLANKLINE>
    """
    out, indent, fenced = [], None, False
    for line in text.splitlines():
        stripped = line.lstrip()
        if stripped.startswith("```"):
            fenced = not fenced
        if indent is None and not fenced and stripped.startswith(">>>"):
            indent = line[:len(line) - len(stripped)]
            out.append(f"{indent}```pycon")
        elif indent is not None and not stripped:
            out.append(f"{indent}```")
            indent = None
        out.append(line)
    if indent is not None:
        out.append(f"{indent}```")
    return "\n".join(out) + ("\n" if text.endswith("\n") else "")


class DoctestFences(griffe.Extension):
    def on_object(self, *, obj, **kwargs):
        if obj.docstring is not None and ">>>" in obj.docstring.value:
            obj.docstring.value = fence_doctests(obj.docstring.value)
