"""What a page or results.tex may show of a results folder's text: escaped, sanitised, never run.

A results folder travels (a shared cluster filesystem, a laptop, a reviewer's browser), and anyone
who can write to it can change study.json, a run's files or its SVG. So nothing read from a folder
or a data set reaches a page as markup: summary.md is rendered with its raw HTML, links and images
shown as text; an SVG keeps only the drawing elements and attributes of an allow-list; LaTeX text
has its special characters escaped and no line break a `%` comment could end on. The pages'
Content-Security-Policy (in a <meta> and in `serve`'s headers) runs no script but the pages' own,
allowed by its hash: an inline script, so the pages still work from file://.
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
import xml.etree.ElementTree as ElementTree

import markdown

# ----------------------------------------------------------------------------------------------
# Markdown

# Python-Markdown passes raw HTML through and turns [text](javascript:...) into a link; without
# these patterns both stay text, escaped like any other (the Python-Markdown FAQ's way).
_MARKUP_PATTERNS = ("html", "link", "image_link", "reference", "image_reference", "short_reference",
                    "short_image_ref", "autolink", "automail")


def markdown_html(text: str) -> str:
    """summary.md as HTML: its tables, emphasis and code; any HTML, link or image in it as text."""
    # align= rather than style= on the cells: the pages' policy allows no style attribute
    renderer = markdown.Markdown(extensions=["tables"], extension_configs={"tables": {"use_align_attribute": True}})
    renderer.preprocessors.deregister("html_block")
    for name in _MARKUP_PATTERNS:
        renderer.inlinePatterns.deregister(name)
    return renderer.convert(text)


# ----------------------------------------------------------------------------------------------
# SVG

SVG_NAMESPACE = "http://www.w3.org/2000/svg"
# What Graphviz draws a graph with. Anything else (script, foreignObject, use, image, style, a, ...)
# is dropped with its content: a link's, a foreign object's or a stylesheet's content is not drawing.
SVG_ELEMENTS = {"svg", "g", "title", "desc", "polygon", "polyline", "path", "ellipse", "circle", "rect", "line",
                "text", "tspan", "defs", "linearGradient", "radialGradient", "stop"}
# Presentation and geometry only: no event handlers (on*), no href, no style (a url() in it loads).
SVG_ATTRIBUTES = {"id", "class", "width", "height", "viewBox", "preserveAspectRatio", "transform", "x", "y", "x1",
                  "y1", "x2", "y2", "cx", "cy", "r", "rx", "ry", "points", "d", "fill", "fill-opacity", "stroke",
                  "stroke-width", "stroke-dasharray", "stroke-opacity", "opacity", "font-family", "font-size",
                  "font-weight", "font-style", "text-anchor", "dominant-baseline", "offset", "stop-color",
                  "stop-opacity", "gradientUnits", "gradientTransform"}
# A paint may name a gradient of the same SVG (Graphviz's "url(#l_0)"), nothing outside it.
_OUTSIDE_REFERENCE = re.compile(r"url\s*\((?!\s*['\"]?#)|javascript:|data:", re.IGNORECASE)


class UnsafeSVG(ValueError):
    """An SVG that cannot be shown safely (entity declarations, or not XML)."""


def sanitised_svg(text: str) -> str:
    """An SVG file as an <svg> element of a page, rebuilt from an allow-list of Graphviz's drawing
    elements and attributes: scripts, event attributes, foreign objects, links and references
    outside it are gone, node ids (the layer names that search finds) and geometry stay."""
    if "<!ENTITY" in text:  # entity expansion is how an XML file grows a billion times in memory
        raise UnsafeSVG("the SVG declares entities")
    try:
        root = ElementTree.fromstring(re.sub(r"<!DOCTYPE[^>\[]*>", "", text, count=1).encode())
    except ElementTree.ParseError as error:
        raise UnsafeSVG(f"the SVG is not XML ({error})") from None
    if _local(root.tag) != "svg":
        raise UnsafeSVG(f"the file's root is <{_local(root.tag)}>, not <svg>")
    return _element(root, top=True)


def _local(name: str) -> str:
    """A tag's or attribute's name without its namespace, or "" where the namespace is not SVG's."""
    if name.startswith("{"):
        namespace, _, local = name[1:].partition("}")
        return local if namespace == SVG_NAMESPACE else ""
    return name


def _element(node, top: bool = False) -> str:
    tag = _local(node.tag)
    if tag not in SVG_ELEMENTS:
        return html.escape(node.tail or "", quote=False)
    attributes = [(name, value) for name, value in ((_local(k), v) for k, v in node.attrib.items())
                  if name in SVG_ATTRIBUTES and not _OUTSIDE_REFERENCE.search(value)]
    if top:
        attributes.append(("xmlns", SVG_NAMESPACE))
    opening = " ".join([tag, *(f'{name}="{html.escape(value)}"' for name, value in attributes)])
    inner = html.escape(node.text or "", quote=False) + "".join(_element(child) for child in node)
    return f"<{opening}>{inner}</{tag}>" + ("" if top else html.escape(node.tail or "", quote=False))


# ----------------------------------------------------------------------------------------------
# Content-Security-Policy


def source_hash(text: str) -> str:
    """A CSP hash source for an inline <script> or <style> whose content is exactly `text`."""
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def content_security_policy(script: str, style: str) -> str:
    """Nothing but the page's own script and stylesheet (by their hashes), images from its folder or
    inline, no plugins, forms, base URL or network requests. javascript: URLs and event attributes
    need 'unsafe-inline', which is not granted."""
    return (f"default-src 'none'; script-src {source_hash(script)}; style-src {source_hash(style)}; "
            f"img-src 'self' data:; base-uri 'none'; form-action 'none'")


# ----------------------------------------------------------------------------------------------
# LaTeX

_LATEX_SPECIAL = str.maketrans({c: "\\" + c for c in "&%$#_{}"}
                               | {"\\": r"\textbackslash{}", "~": r"\textasciitilde{}", "^": r"\^{}"})


def latex_text(text) -> str:
    """Text as LaTeX typesets it: special characters escaped, on one line (a blank line would end
    a table's paragraph)."""
    return " ".join(str(text).split()).translate(_LATEX_SPECIAL)


def latex_comment(text) -> str:
    """A `%` comment line: on one line, so that no text after a line break is read as LaTeX."""
    return "% " + " ".join(str(text).split())
