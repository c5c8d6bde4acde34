"""What is documented runs: every shell command in README.md's bash blocks, read from the README
as it is now, run as written against a temporary checkout and DAGSTER_HOME.

Each `##` section is a reader's session of its own (a fresh checkout), its commands run in the
README's order. Only these are not run as written, each for the reason given, and each must
still be in the README (a stale exception fails):

- EXCEPTIONS: commands that need a browser or would run this suite; they are checked another way.
- PLACEHOLDERS: text the reader replaces; the test puts something real in its place.
- EXAMPLES: commands shown for a state a fresh home does not have (a quarantined bar); they run
  as written and must refuse with a message naming what is missing.
- `.env` lines are shown in ```dotenv blocks, not run: each name there must be a setting
  documented in `.env.example`.

`make` runs with `-o install` (a shell function adds it): the checkout shares this project's
virtualenv, which must not be re-synced from a temporary copy. A small synthetic universe keeps
it quick.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"

EXCEPTIONS = {
    "make test": "runs the whole test suite, this test included; checked with `make -n test` instead",
    "make ui": "starts a web server for a browser and runs until stopped; checked with `make -n ui` "
               "and `dagster dev --help` instead",
}
PLACEHOLDERS = {
    "/path/to/bars": "a folder of bars the reader brings; the test writes synthetic bars there",
}
EXAMPLES = {  # a part of the command -> (why, what its refusal must say)
    "-j release_quarantine_job": ("releases a bar in quarantine, which a fresh home has none of",
                                  "is not quarantined on"),
}
SMALL_UNIVERSE = {  # the defaults with fewer symbols and a shorter history (as test_cli.py)
    "TRADING_UNIVERSE_SIZE": "6", "TRADING_HISTORY_START": "2023-01-03", "TRADING_TRAIN_WINDOW_SESSIONS": "120",
    "TRADING_TOP_K": "3", "TRADING_DRIFT_WINDOW_SESSIONS": "10",
}
SKIP_INSTALL = 'make() { command make -o install "$@"; }'
HEREDOC = re.compile(r"<<-?\s*'?\"?(\w+)'?\"?")


@dataclass(frozen=True)
class Block:
    section: str
    commands: tuple[str, ...]


def readme_blocks(text: str, languages=("bash", "sh", "shell")) -> list[Block]:
    """The blocks in one of `languages`, each split into commands: comment lines dropped,
    backslash continuations joined, a here-document kept with its command."""
    blocks, section, lines = [], "", iter(text.splitlines())
    for line in lines:
        if line.startswith("## "):
            section = line[3:].strip()
        if line.strip() not in {f"```{language}" for language in languages}:
            continue
        body = []
        for inner in lines:
            if inner.strip() == "```":
                break
            body.append(inner)
        blocks.append(Block(section, tuple(split_commands(body))))
    return blocks


def split_commands(body: list[str]) -> list[str]:
    commands, pending, heredoc_end = [], [], None
    for line in body:
        if heredoc_end is not None:
            pending.append(line)
            if line.strip() == heredoc_end:
                commands.append("\n".join(pending))
                pending, heredoc_end = [], None
            continue
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending.append(line)
        if line.rstrip().endswith("\\"):
            continue
        match = HEREDOC.search(line)
        if match:
            heredoc_end = match.group(1)
            continue
        commands.append("\n".join(pending))
        pending = []
    assert not pending and heredoc_end is None, f"a README command never ends: {pending}"
    return commands


def normalised(command: str) -> str:
    """The command without its trailing comment or extra spaces, to compare with the lists above."""
    return " ".join(command.split("#", 1)[0].split())


BLOCKS = readme_blocks(README.read_text())
SECTIONS = list(dict.fromkeys(b.section for b in BLOCKS))


def test_the_readme_has_commands_and_every_exception_and_placeholder_is_still_in_it():
    commands = [normalised(c) for b in BLOCKS for c in b.commands]
    assert any(c.startswith("make demo") for c in commands)
    for exception in EXCEPTIONS:
        assert exception in commands, f"{exception!r} is no longer in the README: drop its exception"
    for placeholder in PLACEHOLDERS:
        assert placeholder in README.read_text(), f"{placeholder!r} is no longer in the README"
    for example in EXAMPLES:
        assert any(example in c for c in commands), f"{example!r} is no longer in the README: drop it"


def test_settings_blocks_name_documented_settings():
    documented = (REPO / ".env.example").read_text()
    dotenv = readme_blocks(README.read_text(), languages=("dotenv",))
    settings = [line.split("=", 1)[0] for b in dotenv for line in b.commands]
    assert settings, "the README shows no settings block"
    for name in settings:
        assert re.search(rf"^#?\s*{name}=", documented, re.MULTILINE), f"{name} is not in .env.example"


@pytest.fixture
def checkout(tmp_path):
    """A reader's checkout: the Makefile and workspace, the shared virtualenv, a fresh home."""
    work = tmp_path / "checkout"
    (work / "dagster_home").mkdir(parents=True)
    for name in ("Makefile", "workspace.yaml", ".env.example", "pyproject.toml"):
        shutil.copy(REPO / name, work / name)
    shutil.copy(REPO / "dagster_home" / "dagster.yaml", work / "dagster_home" / "dagster.yaml")
    for name in (".venv", ".tools"):
        (work / name).symlink_to(REPO / name)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRADING_", "DAGSTER_", "MAKE"))}
    env.update(SMALL_UNIVERSE, DAGSTER_HOME=str(work / "dagster_home"), DAGSTER_DISABLE_TELEMETRY="1")
    return work, env


def write_bars(folder: Path) -> None:
    """Synthetic bars covering the dates the README's own example names."""
    from trading_pipeline.domain.calendar import sessions_between
    from trading_pipeline.domain.market import SyntheticMarket

    folder.mkdir()
    bars = SyntheticMarket(seed=11, universe_size=6).bars(sessions_between(date(2012, 9, 4), date(2016, 6, 30)))
    bars.write_csv(folder / "bars.csv")


def run(command: str, work: Path, env: dict, exports: list[str]) -> subprocess.CompletedProcess:
    script = "\n".join(["set -e", SKIP_INSTALL, *exports, command])
    return subprocess.run(["bash", "-c", script], cwd=work, env=env, capture_output=True, text=True, timeout=900)


def check_exception(command: str, work: Path, env: dict) -> None:
    target = normalised(command).split()[1]
    dry = subprocess.run(["make", "-n", "-o", "install", target], cwd=work, env=env, capture_output=True, text=True, timeout=60)
    assert dry.returncode == 0, dry.stderr
    expected = {"test": "pytest", "ui": "dagster dev -w workspace.yaml"}[target]
    assert expected in dry.stdout, dry.stdout
    if target == "ui":
        help_ = subprocess.run([str(work / ".venv/bin/dagster"), "dev", "--help"], cwd=work, env=env,
                               capture_output=True, text=True, timeout=120)
        assert help_.returncode == 0 and "--workspace" in help_.stdout


@pytest.mark.timeout(1800)  # whole documented workflows (a first model, several sessions) on a shared machine
@pytest.mark.parametrize("section", SECTIONS)
def test_every_command_of_the_section_runs_as_written(section, checkout):
    work, env = checkout
    exports: list[str] = []  # a block's `export` lines hold for its later commands
    timings: list[str] = []
    for block in (b for b in BLOCKS if b.section == section):
        exports.clear()
        for command in block.commands:
            if normalised(command) in EXCEPTIONS:
                check_exception(command, work, env)
                continue
            for placeholder in PLACEHOLDERS:
                if placeholder in command:
                    folder = work / "bars"
                    write_bars(folder)
                    command = command.replace(placeholder, str(folder))
            started = time.perf_counter()
            completed = run(command, work, env, exports)
            timings.append(f"{time.perf_counter() - started:6.1f} s  {normalised(command)[:90]}")
            print(f"README {section!r}: {timings[-1]}", flush=True)
            example = next((refusal for part, (_, refusal) in EXAMPLES.items() if part in command), None)
            if example is not None:
                output = completed.stdout + completed.stderr
                assert completed.returncode != 0 and example in output, output[-4000:]
                continue
            assert completed.returncode == 0, (
                f"README ({section}) command failed:\n{command}\n--- output (end) ---\n"
                f"{(completed.stdout + completed.stderr)[-4000:]}")
            if normalised(command).startswith("export "):
                exports.append(command)
    print(f"\nREADME section {section!r}:\n" + "\n".join(timings))
