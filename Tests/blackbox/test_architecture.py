"""docs/architecture.md's layout table against the code: every target in Sources/ is in the
table, and every module a target's files import is one the table says it may import."""

import os
import re

from conftest import ROOT

SYSTEM_MODULES = {"Glibc", "Darwin", "Synchronization", "FoundationEssentials", "Foundation", "Dispatch"}
IMPORT = re.compile(r"^\s*(?:@testable\s+|@preconcurrency\s+)?import\s+(?:struct\s+|enum\s+|class\s+)?([A-Za-z_][A-Za-z0-9_]*)", re.M)


def layout_table():
    """{target: set of modules it may import} from the table's rows."""
    text = open(os.path.join(ROOT, "docs", "architecture.md"), encoding="utf-8").read()
    section = text.split("## Layout and what each target may import", 1)[1].split("\n## ", 1)[0]
    allowed = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[0].startswith("`"):
            continue
        targets = re.findall(r"`([^`]+)`", cells[0])
        names = set()
        for item in cells[2].split(";")[0].split(","):
            item = re.sub(r"\(.*?\)", "", item).strip()
            if item and item != "nothing":
                names.add(item.split()[0])
        for target in targets:
            allowed[target] = names | set(targets)
    return allowed


def imports_of(target):
    found = {}
    for folder, _, files in os.walk(os.path.join(ROOT, "Sources", target)):
        for name in files:
            if name.endswith(".swift"):
                path = os.path.join(folder, name)
                for module in IMPORT.findall(open(path, encoding="utf-8").read()):
                    found.setdefault(module, []).append(os.path.relpath(path, ROOT))
    return found


def test_every_target_is_in_the_layout_table_and_imports_only_what_it_may():
    allowed = layout_table()
    targets = sorted(entry for entry in os.listdir(os.path.join(ROOT, "Sources")) if not entry.startswith("."))
    missing = [target for target in targets if target not in allowed]
    assert not missing, f"docs/architecture.md's layout table lacks {missing}"
    assert not [t for t in allowed if t not in targets], "the table names targets that do not exist"
    wrong = []
    for target in targets:
        for module, files in sorted(imports_of(target).items()):
            if module not in allowed[target] and module not in SYSTEM_MODULES:
                wrong.append(f"{target} imports {module} ({files[0]}), which docs/architecture.md does not allow")
    assert not wrong, "\n".join(wrong)


def test_the_status_proxy_and_targets_modules_stand_apart():
    for target in ("VigilStatus", "VigilProxy", "VigilTargets"):
        imported = set(imports_of(target))
        others = {"VigilStatus", "VigilProxy", "VigilTargets", "VigilServer"} - {target}
        assert not imported & others, f"{target} imports {sorted(imported & others)}"


def reason_labels(enum_file):
    """The labels an enum of reasons spells (`case plainHTTP = "plain_http"`, or its case name)."""
    source = open(os.path.join(ROOT, "Sources", "VigilRegistry", enum_file), encoding="utf-8").read()
    return {raw or name for name, raw in re.findall(r"^\s*case (\w+)(?: = \"([a-z_]+)\")?\s*$", source, re.M)}


def documented_labels(doc_file, heading=None):
    """The labels in the last column of the first table of a doc (of its `heading` section)."""
    doc = open(os.path.join(ROOT, "docs", doc_file), encoding="utf-8").read()
    if heading:
        doc = doc.split(heading, 1)[1]
    table = doc[doc.index("\n|"):].split("\n\n", 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("|") and not line.startswith("|---")][1:]
    return {label for row in rows for label in re.findall(r"`([a-z_]+)`", row.rstrip("| ").rsplit("|", 1)[-1])}


def test_every_handshake_rejection_reason_is_documented():
    """The reason labels of vigil_handshakes_rejected_total, as the enum spells them, against
    docs/refused-handshakes.md's table (both ways)."""
    reasons = reason_labels("HandshakeRejectionReason.swift")
    documented = documented_labels("refused-handshakes.md")
    assert len(reasons) >= 20, reasons
    assert reasons == documented, f"in the code only: {sorted(reasons - documented)}; in the docs only: {sorted(documented - reasons)}"


def test_every_tls_handshake_failure_reason_is_documented():
    """The reason labels of vigil_tls_handshakes_failed_total against docs/tls.md's table."""
    reasons = reason_labels("TLSHandshakeFailureReason.swift")
    documented = documented_labels("tls.md", "## Failed handshakes")
    assert len(reasons) >= 7, reasons
    assert reasons == documented, f"in the code only: {sorted(reasons - documented)}; in the docs only: {sorted(documented - reasons)}"
