"""The ``mcp-affinity`` command line: ``plan``, ``diff`` and ``check``.

Exit status: 0 fine; 1 a mandatory policy violation; 2 bad config, a missing stack or an
unreadable file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import pulumi
import typer
from rich.console import Console
from rich.markup import escape

from . import policies
from ..errors import ConfigError
from . import diff as plan_diff
from . import mermaid, render
from .project import ProjectError, find_project
from .runner import run_plan

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Credential-free tools for mcp-affinity stacks.")
console = Console()
errors = Console(stderr=True)


@app.command()
def plan(
    stack: str = typer.Option(..., "--stack", "-s", help="Stack name: reads Pulumi.<stack>.yaml."),
    program: Optional[Path] = typer.Option(None, "--program", help="Project directory (default: the one holding Pulumi.yaml above the current directory)."),
    json_file: Optional[Path] = typer.Option(None, "--json", help="Write the plan as JSON to this file."),
    mermaid_file: Optional[Path] = typer.Option(None, "--mermaid", help="Write the topology as a Mermaid flowchart to this file."),
    header: str = typer.Option(policies.DEFAULT_SESSION_HEADER, "--header", help="The session header hashing rules must name."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only the summary."),
) -> None:
    """Run the stack's program under Pulumi's mock runtime: no CLI, credentials or network.

    Then run the policy rules over the result; a mandatory violation exits 1.
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
    if not quiet:
        console.print(render.tree(result))
    for line in render.summary(result):
        console.print(line, highlight=False, markup=False, soft_wrap=True)
    document = result.to_json()
    if json_file is not None:
        json_file.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
        console.print(f"plan written to {json_file}", highlight=False)
    if mermaid_file is not None:
        mermaid_file.write_text(mermaid.to_mermaid(document))
    _report(policies.check_plan(document, header=header))


@app.command()
def diff(
    base: Path = typer.Argument(..., help="Plan JSON of the base (e.g. main)."),
    head: Path = typer.Argument(..., help="Plan JSON of the head (the pull request)."),
    format: str = typer.Option("text", "--format", "-f", help="text or markdown."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write here instead of standard output."),
    picture: bool = typer.Option(True, "--mermaid/--no-mermaid", help="Markdown: add the head's topology picture."),
) -> None:
    """Compare two plan files of one stack: added, removed and changed resources, secrets masked."""
    if format not in ("text", "markdown"):
        _fail("--format is text or markdown")
    base_plan, head_plan = _load(base), _load(head)
    try:
        result = plan_diff.diff_plans(base_plan, head_plan)
    except ValueError as error:
        _fail(str(error))
    if format == "text":
        text = plan_diff.to_text(result)
    else:
        text = plan_diff.to_markdown(result)
        if picture:
            text += "\n<details><summary>Topology</summary>\n\n```mermaid\n" + mermaid.to_mermaid(head_plan) + "```\n</details>\n"
    if output is None:
        console.print(text, markup=False, highlight=False, soft_wrap=True)
    else:
        output.write_text(text)


@app.command()
def check(
    plan_file: Path = typer.Argument(..., help="A plan JSON written by `mcp-affinity plan --json`."),
    header: str = typer.Option(policies.DEFAULT_SESSION_HEADER, "--header", help="The session header hashing rules must name."),
) -> None:
    """Run the policy rules over a saved plan; exit 1 on a mandatory violation."""
    _report(policies.check_plan(_load(plan_file), header=header))
    console.print("policy checks passed", highlight=False)


def _report(violations: list) -> None:
    for v in violations:
        errors.print(f"[red]{v.enforcement}[/] {escape(f'[{v.rule}]')} {escape(v.message)} ({escape(v.urn)})",
                     highlight=False, soft_wrap=True)
    if any(v.enforcement == "mandatory" for v in violations):
        raise typer.Exit(1)


def _load(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        _fail(f"{path}: {error}")
    raise AssertionError("unreachable")


def _fail(message: str) -> None:
    errors.print(f"[red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


@app.callback()
def _root() -> None:
    """Keeps ``plan`` a sub-command even while it is the only one."""


def main() -> None:
    app()
