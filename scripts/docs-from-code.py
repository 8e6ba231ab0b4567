#!/usr/bin/env python3
"""Writes the parts of the docs that come from the code, between their markers, from the real
vigild binary: the settings a reload applies (docs/systemd.md, systemd/vigil.yaml) and the
compression and TLS settings' tables (docs/compression.md, docs/tls.md). With
--check it changes nothing and fails, naming the file, when one is out of date (make test runs
that through Tests/blackbox/test_config.py).

Usage: scripts/docs-from-code.py VIGILD [--check]
"""

import os
import re
import subprocess
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def settings(vigild):
    """(key, description, default, reloadable) of every setting `vigild --help` lists, in the
    catalog's order."""
    help_text = subprocess.run([vigild, "--help"], capture_output=True, text=True, check=True).stdout
    found = []
    for flag, body in re.findall(r"^  --([a-z0-9-]+) <[^>]*>\n((?:        .*\n)+)", help_text, re.M):
        text = " ".join(body.split())
        match = re.fullmatch(r"(.*) \(default: (.*?); env \w+(?:; per route)?(; reloadable)?\)", text)
        if match:
            found.append((flag.replace("-", "_"), match.group(1), match.group(2), bool(match.group(3))))
    return found


def reloadable_keys(vigild):
    """The keys `vigild --help` marks reloadable, in the catalog's order."""
    return [key for key, _, _, reloadable in settings(vigild) if reloadable]


def settings_table(vigild, prefix):
    """A Markdown table of the settings whose key starts with `prefix`."""
    rows = ["| key | default | meaning |", "|---|---|---|"]
    for key, description, default, reloadable in settings(vigild):
        if key.startswith(prefix):
            meaning = description.replace("|", "\\|")  # a choice's `(a|b)` must not end the cell
            rows.append(f"| `{key}` | `{default}` | {meaning}{' (reloadable)' if reloadable else ''} |")
    return "\n".join(rows)


def blocks(vigild):
    """{path: (begin marker, end marker, text between)} for every generated block."""
    keys = reloadable_keys(vigild)
    markdown = ", ".join(f"`{key}`" for key in keys[:-1]) + f" and `{keys[-1]}`"
    yaml = textwrap.fill(", ".join(keys), width=92, initial_indent="#   ", subsequent_indent="#   ")
    return {
        "docs/systemd.md": ("<!-- reloadable keys: scripts/docs-from-code.py -->", "<!-- end -->",
                            f"{markdown} apply at once"),
        "systemd/vigil.yaml": ("# `systemctl reload vigild` re-reads this file; these keys apply at once (the others need a restart):",
                               "# (the list comes from the settings catalog: scripts/docs-from-code.py)", yaml),
        "docs/compression.md": ("<!-- compression settings: scripts/docs-from-code.py -->", "<!-- end -->",
                                "\n" + settings_table(vigild, "compression") + "\n"),
        "docs/tls.md": ("<!-- tls settings: scripts/docs-from-code.py -->", "<!-- end -->",
                        "\n" + settings_table(vigild, "tls_") + "\n"),
    }


def updated(text, begin, end, body):
    pattern = re.compile(re.escape(begin) + r"\n?.*?\n?" + re.escape(end), re.S)
    if not pattern.search(text):
        raise SystemExit(f"docs-from-code: markers {begin!r} … {end!r} not found")
    inline = not begin.startswith("#")
    replacement = f"{begin}{body}{end}" if inline else f"{begin}\n{body}\n{end}"
    return pattern.sub(lambda _: replacement, text, count=1)


def main():
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    vigild, check = sys.argv[1], "--check" in sys.argv[2:]
    stale = []
    for path, (begin, end, body) in blocks(vigild).items():
        full = os.path.join(ROOT, path)
        text = open(full, encoding="utf-8").read()
        new = updated(text, begin, end, body)
        if new != text:
            stale.append(path)
            if not check:
                open(full, "w", encoding="utf-8").write(new)
    if check and stale:
        raise SystemExit("out of date (run scripts/docs-from-code.py VIGILD): " + ", ".join(stale))
    print("docs-from-code: " + (", ".join(stale) + " updated" if stale else "up to date"))


if __name__ == "__main__":
    main()
