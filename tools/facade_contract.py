"""An import-linter contract: other folders use a folder only through its ``__init__``.

import-linter's ``protected`` contract states this for one package at a time; ours has a
dozen folders and gains more, so this contract derives the folders from the graph
instead of a hand-kept list that would drift from the tree.
"""

from __future__ import annotations

from typing import Any

import grimp
from importlinter import Contract, ContractCheck, fields, output
from importlinter.application import contract_utils


class FacadeContract(Contract):
    """Each child package of a container is imported from outside only as the package itself.

    ``public_modules`` names the modules the seed's API itself tells users to import
    (``from orchestrator.state import checkpoint``); they count as part of their facade.
    """

    type_name = "facades"

    containers = fields.ListField(subfield=fields.StringField())
    public_modules = fields.ListField(subfield=fields.StringField(), required=False)
    ignore_imports = fields.SetField(subfield=fields.ImportExpressionField(), required=False)

    def check(self, graph: grimp.ImportGraph, verbose: bool) -> ContractCheck:
        removal = contract_utils.remove_ignored_imports_and_report(
            graph=graph,
            ignore_imports=self.ignore_imports,  # type: ignore[arg-type]
            unmatched_alerting=contract_utils.AlertLevel.ERROR,
        )
        public = set(self.public_modules or [])  # type: ignore[arg-type]
        broken: list[dict[str, Any]] = []
        for container in self.containers:  # type: ignore[attr-defined]
            for folder in sorted(graph.find_children(container)):
                inside = graph.find_descendants(folder)
                for module in sorted(inside - public):
                    outsiders = graph.find_modules_that_directly_import(module) - inside - {folder}
                    for importer in sorted(outsiders):
                        lines = [
                            detail["line_number"]
                            for detail in graph.get_import_details(
                                importer=importer, imported=module
                            )
                        ]
                        broken.append(
                            {
                                "importer": importer,
                                "imported": module,
                                "folder": folder,
                                "lines": lines,
                            }
                        )
        return ContractCheck(
            kept=not broken, warnings=list(removal.warnings), metadata={"broken": broken}
        )

    def render_broken_contract(self, check: ContractCheck) -> None:
        for link in check.metadata["broken"]:
            output.print_error(
                f"{link['importer']} -> {link['imported']} (l.{','.join(map(str, link['lines']))}):"
                f" import it from {link['folder']}",
                bold=False,
            )
            output.new_line()
