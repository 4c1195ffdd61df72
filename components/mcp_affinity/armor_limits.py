"""Cloud Armor's fixed limits on a security policy rule, and how the package measures its own rules.

A rule the API refuses fails at ``pulumi up``, after a plan that looked fine; these limits let the
settings be refused first (:func:`mcp_affinity.security_policy.limit_faults`). Only limits Google
states are here:

- :data:`MAX_SUBEXPRESSIONS`: "an expression with up to five subexpressions"
  (:data:`~mcp_affinity.sources.CLOUD_ARMOR_RULES_LANGUAGE`).
- :data:`MAX_EXPRESSION_CHARS`, :data:`MAX_SUBEXPRESSION_CHARS`: characters per rule expression
  and per subexpression, the system limits of :data:`~mcp_affinity.sources.CLOUD_ARMOR_LIMITS`.
  Unlike the others, these two values were not read on Google's page itself (its limits table was
  out of reach when they were encoded): they are the values independent public rule generators
  quote from that page. A refusal here may be stricter than Google; confirm on the page and adjust.
- :data:`MAX_DESCRIPTION_CHARS`: "The description field is limited to 64 characters"
  (:data:`~mcp_affinity.sources.CLOUD_ARMOR_BEST_PRACTICES`, "Provide rule descriptions").

A subexpression is an operand of ``&&`` or ``||`` (:func:`subexpressions`); characters are those of
the expression as sent, string escapes included (a dot in a host costs three: ``\\\\.``).
"""

from __future__ import annotations

from . import sources

MAX_SUBEXPRESSIONS = 5
"""Subexpressions per rule expression (:data:`~mcp_affinity.sources.CLOUD_ARMOR_RULES_LANGUAGE`)."""
MAX_EXPRESSION_CHARS = 2048
"""Characters per rule expression (:data:`~mcp_affinity.sources.CLOUD_ARMOR_LIMITS`)."""
MAX_SUBEXPRESSION_CHARS = 1024
"""Characters per subexpression (:data:`~mcp_affinity.sources.CLOUD_ARMOR_LIMITS`)."""
MAX_DESCRIPTION_CHARS = 64
"""Characters per rule description (:data:`~mcp_affinity.sources.CLOUD_ARMOR_BEST_PRACTICES`)."""


def subexpressions(expression: str) -> list[str]:
    """The operands of ``&&`` and ``||`` in ``expression``, at any depth, outside string literals,
    without the spaces and grouping parentheses around them:
    ``a && (b || c)`` -> ``["a", "b", "c"]``."""
    pieces, start, quote, index = [], 0, None, 0
    while index < len(expression):
        char = expression[index]
        if quote:
            if char == "\\":
                index += 1  # the escaped character cannot end the literal
            elif char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif expression[index:index + 2] in ("&&", "||"):
            pieces.append(expression[start:index])
            start, index = index + 2, index + 1
        index += 1
    pieces.append(expression[start:])
    return [_ungrouped(piece.strip()) for piece in pieces]


def _ungrouped(piece: str) -> str:
    """``piece`` without the parentheses that open or close a group around it (unbalanced in it)."""
    balance = _balance(piece)
    if balance > 0:
        piece = piece[balance:].lstrip()
    elif balance < 0:
        piece = piece[:balance].rstrip()
    return piece


def _balance(text: str) -> int:
    """Opening minus closing parentheses of ``text``, outside string literals."""
    balance, quote, escaped = 0, None, False
    for char in text:
        if escaped:
            escaped = False
        elif quote:
            escaped, quote = char == "\\", None if char == quote else quote
        elif char in "'\"":
            quote = char
        else:
            balance += (char == "(") - (char == ")")
    return balance


def rule_faults(rule: dict) -> list[str]:
    """What of ``rule`` (a ``SecurityPolicyRule`` dict as planned) is over a limit, one sentence
    each with the limit, the measured value and the source; [] when within every limit."""
    found = []
    description = rule.get("description") or ""
    if len(description) > MAX_DESCRIPTION_CHARS:
        found.append(f"description of {len(description)} characters; Cloud Armor allows {MAX_DESCRIPTION_CHARS} "
                     f"({sources.CLOUD_ARMOR_BEST_PRACTICES})")
    expression = rule.get("match", {}).get("expr", {}).get("expression")
    if expression is None:
        return found
    if len(expression) > MAX_EXPRESSION_CHARS:
        found.append(f"expression of {len(expression)} characters; Cloud Armor allows {MAX_EXPRESSION_CHARS} per "
                     f"expression ({sources.CLOUD_ARMOR_LIMITS})")
    parts = subexpressions(expression)
    if len(parts) > MAX_SUBEXPRESSIONS:
        found.append(f"{len(parts)} subexpressions; Cloud Armor allows {MAX_SUBEXPRESSIONS} "
                     f"({sources.CLOUD_ARMOR_RULES_LANGUAGE})")
    for part in parts:
        if len(part) > MAX_SUBEXPRESSION_CHARS:
            found.append(f"subexpression of {len(part)} characters ({part[:40]}...); Cloud Armor allows "
                         f"{MAX_SUBEXPRESSION_CHARS} per subexpression ({sources.CLOUD_ARMOR_LIMITS})")
    return found
