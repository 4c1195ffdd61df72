"""The ``mcp-affinity`` command line: ``plan``, ``diff`` and ``check``.

Exit status, whatever the input: 0 fine; 1 a mandatory policy violation (``plan``, ``check``) or,
with ``diff --exit-code``, changes found; 2 bad input (bad config, a missing stack, a file that
cannot be read or written, a JSON document that is not a plan), with a one-line reason on
standard error and never a traceback; 3 (``check --prune-only``) a change that is not only the
pruning of retired generations (:data:`NOT_PRUNING`).

Text for a terminal is coloured and wrapped at its width; text for anything else (a CI log) is
plain, never wrapped and free of trailing spaces (:func:`render.plain_text`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Callable, NoReturn, Optional

import pulumi
import typer
from rich.console import Console
from rich.markup import escape

from .. import policies, prune
from ..errors import ConfigError
from . import diff as plan_diff
from . import mermaid, render
from .plan_file import PlanError, load as load_plan
from .project import ProjectError, find_project
from .runner import run_plan
from .conformance_command import conformance

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Credential-free tools for mcp-affinity stacks.")
console = Console()
errors = Console(stderr=True)


@app.command()
def plan(
    stack: str = typer.Option(..., "--stack", "-s", help="Stack name: reads Pulumi.<stack>.yaml."),
    program: Optional[Path] = typer.Option(None, "--program", help="Project directory (default: the one holding Pulumi.yaml above the current directory)."),
    json_file: Optional[Path] = typer.Option(None, "--json", help="Write the plan as JSON to this file; '-' writes it to standard output and everything else to standard error."),
    mermaid_file: Optional[Path] = typer.Option(None, "--mermaid", help="Write the topology as a Mermaid flowchart to this file."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only the summary: resource counts and warnings."),
) -> None:
    """Run the stack's program under Pulumi's mock runtime: no CLI, credentials or network.

    Then run the policy rules over the result (each service's header and timeout read from the
    plan); a mandatory violation exits 1.
    """
    try:
        project = find_project(program or Path.cwd())
        result = run_plan(project, stack)
    except (ConfigError, ProjectError) as error:
        errors.print(f"[red]error:[/] {escape(str(error))}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    except pulumi.RunError as error:
        errors.print(f"[red]error:[/] stack '{stack}': {escape(str(error))}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    to_stdout = json_file == Path("-")
    # With --json - standard output carries the JSON alone, so it can be piped (jq, gcloud).
    text_out = errors if to_stdout else console
    document, read = result.to_json(), result.document()  # as written; as check, diff and the picture read it
    if not quiet:
        _print_renderable(render.tree(result), text_out)
        _print("\n".join(render.access_lines(read["resources"])), text_out)
    _print("\n".join(render.summary(result, outputs=not quiet)), text_out)
    if to_stdout:
        sys.stdout.write(json.dumps(document, indent=2, sort_keys=True) + "\n")
        sys.stdout.flush()
    elif json_file is not None:
        _write(json_file, json.dumps(document, indent=2, sort_keys=True) + "\n")
        _print(f"plan written to {json_file}")
    if mermaid_file is not None:
        _write(mermaid_file, mermaid.to_mermaid(read))
    _report(policies.check_plan(read))


@app.command()
def diff(
    base: Path = typer.Argument(..., help="Plan JSON of the base (e.g. main), or the JSON of a real `pulumi preview --json` alone."),
    head: Optional[Path] = typer.Argument(None, help="Plan JSON of the head (the pull request); omit it for a real preview."),
    format: str = typer.Option("text", "--format", "-f", help="text or markdown."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write here instead of standard output."),
    picture: bool = typer.Option(True, "--mermaid/--no-mermaid", help="Markdown: add the head's topology picture."),
    exit_code: bool = typer.Option(False, "--exit-code", help="Exit 1 when up would change something (as git diff --exit-code)."),
) -> None:
    """Say what `pulumi up` would do going from BASE to HEAD: what ends live sessions and changes
    who may call, then add, change, replace, delete.

    A real preview's JSON (`pulumi preview --json`) holds both sides: give it alone. Exit 0 (with
    --exit-code: 0 no changes, 1 changes), 2 when an input is not a plan.
    """
    if format not in ("text", "markdown"):
        _fail("--format is text or markdown")
    result, text = _guarded(lambda: _diff_text(base, head, format, picture))
    if output is None:
        _print(text.rstrip("\n"))
    else:
        _write(output, text)
    if exit_code and not result.is_empty:
        raise typer.Exit(1)


def _sides(base: Path, head: Optional[Path]) -> tuple[dict, dict]:
    """(before, after): two plans, or a preview's old and new states."""
    if head is not None:
        return load_plan(base, "base"), load_plan(head, "head")
    after = load_plan(base, "preview")
    before = after["before"] or {**after, "resources": [], "outputs": {}, "warnings": []}
    return before, after


def _diff_text(base: Path, head: Optional[Path], format: str, picture: bool) -> tuple[plan_diff.PlanDiff, str]:
    base_plan, head_plan = _sides(base, head)
    result = plan_diff.diff_plans(base_plan, head_plan)
    violations = policies.check_change(result.review, head_plan)
    # The access map and the picture need every resource: a preview without --show-sames lists only what changes.
    access = plan_diff.access_changes(base_plan, head_plan) if head_plan["complete"] else []
    if format == "text":
        return result, plan_diff.to_text(result, violations) + "".join(f"{line}\n" for line in access)
    text = plan_diff.to_markdown(result, violations=violations) + plan_diff.access_markdown(access)
    if picture and head_plan["complete"]:
        text += "\n<details><summary>Topology</summary>\n\n```mermaid\n" + mermaid.to_mermaid(head_plan) + "```\n</details>\n"
    return result, text


NOT_PRUNING = 3
"""``check --prune-only``'s exit status for a change that is not only pruning."""


@app.command()
def check(
    plan_file: Path = typer.Argument(..., help="A plan JSON written by `mcp-affinity plan --json`, or a real `pulumi preview --json`."),
    head: Optional[Path] = typer.Argument(None, help="A second plan: PLAN_FILE is then the base, and the change from it to HEAD is judged too."),
    prune_only: bool = typer.Option(False, "--prune-only", help="Also say whether the change only prunes retired generations: exit 3 and list the other steps when not; 'nothing to prune' when it changes nothing."),
) -> None:
    """Run the policy rules over a saved plan: exit 0 passed, 1 a mandatory violation, 2 not a plan.

    Each service's session header and timeout are read from the plan itself. Given two plans, or a
    real preview (which holds the old states), the change rules run too: a production change that
    ends live sessions (advisory) or widens who may call (mandatory unless acknowledged); the
    output then leads with what the change does to live sessions and who may call (as `diff`).

    With --prune-only (two plans or a preview): exit 0 when every step removes a retired
    generation's resources (its tag, NEGs, backend services, routes) or there is no step, 3 when
    any step does something else (listed), before a mandatory violation's 1.
    """
    document, violations, review, verdict = _guarded(lambda: _checked(plan_file, head, prune_only))
    for line in review:
        _print(line)
    for warning in document["warnings"]:
        _print(f"warning: {warning['message']}")
    if verdict is not None:
        for line in verdict.lines():
            _print(line)
        if not verdict.only_pruning:
            _report(violations, stop=False)
            raise typer.Exit(NOT_PRUNING)
    _report(violations)
    _print(f"policy checks passed: {len(document['resources'])} resources of stack '{document['stack']}'")


def _checked(path: Path, head: Optional[Path], prune_only: bool = False) -> tuple[dict, list, list[str], Optional[prune.PruneVerdict]]:
    """(the plan, its violations, the change's review lines: none for a plan alone, the prune verdict
    with ``prune_only``)."""
    before, document = _sides(path, head)
    violations, review, verdict = policies.check_plan(document), [], None
    if head is not None or document["before"] is not None:
        diffed = plan_diff.diff_plans(before, document)
        violations += policies.check_change(diffed.review, document)
        review = plan_diff.review_lines(diffed.review)
        if prune_only:
            verdict = prune.judge(diffed.review, before["resources"], document["resources"])
    elif prune_only:
        raise ValueError("--prune-only judges a change: give a real preview's JSON, or two plans")
    return document, violations, review, verdict


def _guarded(work: Callable[[], Any]) -> Any:
    """``work()``, any failure turned into exit 2 with a one-line reason."""
    try:
        return work()
    except (PlanError, ValueError) as error:
        _fail(str(error).splitlines()[0] if str(error) else type(error).__name__)
    except RecursionError:
        _fail("input nested too deeply to be a plan")
    except Exception as error:  # never a traceback, whatever the input
        _fail(f"cannot process input: {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}")


def _report(violations: list, stop: bool = True) -> None:
    """Print ``violations``; exit 1 on a mandatory one when ``stop``."""
    for v in violations:
        errors.print(f"[red]{v.enforcement}[/] {escape(f'[{v.rule}]')} {escape(v.message)} ({escape(v.urn)})",
                     highlight=False, soft_wrap=True)
    if stop and any(v.enforcement == "mandatory" for v in violations):
        raise typer.Exit(1)


def _print(text: str, out: Optional[Console] = None) -> None:
    (out or console).print(text, markup=False, highlight=False, soft_wrap=True)


def _print_renderable(renderable: Any, out: Console) -> None:
    """Coloured at the terminal's width on a terminal; plain, unwrapped, no trailing spaces elsewhere."""
    if out.is_terminal:
        out.print(renderable)
    else:
        stream = sys.stderr if out.stderr else sys.stdout
        stream.write(render.plain_text(renderable))
        stream.flush()


def _write(path: Path, text: str) -> None:
    try:
        path.write_text(text)
    except OSError as error:
        _fail(f"{path}: cannot write: {error.strerror or error}")


def _fail(message: str) -> NoReturn:
    errors.print(f"[red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


@app.callback()
def _root() -> None:
    """Keeps ``plan`` a sub-command even while it is the only one."""


# The conformance run's own imports (the MCP SDK, anyio) load only when it runs.
app.command(name="conformance")(conformance)


def main() -> None:
    app()
