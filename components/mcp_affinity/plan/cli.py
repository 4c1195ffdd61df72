"""The ``mcp-affinity`` command line: ``plan`` (and, later, ``diff`` and ``check``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import pulumi
import typer
from rich.console import Console
from rich.markup import escape

from ..errors import ConfigError
from . import render
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
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only the summary."),
) -> None:
    """Run the stack's program under Pulumi's mock runtime: no CLI, credentials or network."""
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
    if json_file is not None:
        json_file.write_text(json.dumps(result.to_json(), indent=2, sort_keys=True) + "\n")
        console.print(f"plan written to {json_file}", highlight=False)


@app.callback()
def _root() -> None:
    """Keeps ``plan`` a sub-command even while it is the only one."""


def main() -> None:
    app()
